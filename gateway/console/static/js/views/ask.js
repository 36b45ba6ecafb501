// Staff: ask a customer for access (POST /v1/access-requests, contract §13), prefilled from a
// refusal that says how to ask (403 no_grant / approval_required carry `how_to_ask`), and the
// requests you made, with their state and Cancel for the pending ones.

import { api, path } from "../api.js";
import {
  badge,
  busy,
  errorBox,
  field,
  fromLocalInput,
  h,
  select,
  statusLine,
  table,
  toLocalInput,
  when,
} from "../dom.js";

export const REQUEST_STATE = {
  pending: "warn",
  approved: "ok",
  denied: "bad",
  expired: "info",
  cancelled: "info",
};
const ASKABLE = new Set(["no_grant", "approval_required"]);
const PURPOSES = [
  ["customer_support", "Customer support"],
  ["safety_investigation", "Safety investigation"],
  ["legal_request", "Legal request"],
];
const DURATIONS = [
  [900, "15 minutes"],
  [3600, "1 hour"],
  [4 * 3600, "4 hours"],
  [24 * 3600, "1 day"],
];

/** The cameras of a request or grant, as a person reads them. */
export function cameraList(cameras) {
  return cameras.includes("*") ? "all cameras" : cameras.join(", ");
}

/** A footage window: from → until, in the viewer's zone. */
export function footageWindow(item) {
  return h(
    "span",
    { class: "window" },
    when(item.footage_from, true),
    " → ",
    when(item.footage_until, true),
  );
}

/** A duration in seconds as a person reads it. */
export function duration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} day${seconds === 86400 ? "" : "s"}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? "" : "s"}`;
  return `${Math.round(seconds / 60)} minutes`;
}

/**
 * After a refusal: when the gateway says how to ask, a "Request access" button that opens the
 * form in place, prefilled with what the refusal names plus `extra` (a clip's window, the
 * declared ticket). Null when the refusal is not one an access request cures.
 */
export function askOffer(err, extra, onSent) {
  const how = err && err.details && err.details.how_to_ask;
  if (!how || !ASKABLE.has(err.code) || !how.body) return null;
  const box = h("div", { class: "ask-offer" });
  const button = h("button", { type: "button", text: "Request access" });
  button.addEventListener("click", () => {
    box.replaceChildren(askForm({ ...how.body, ...extra }, onSent));
    const first = box.querySelector("textarea, input");
    if (first) first.focus();
  });
  box.append(
    h("p", {
      class: "muted",
      text: "You may ask the customer for access: they see who asks, why and for what.",
    }),
    button,
  );
  return box;
}

let forms = 0; // ids stay unique when the desk shows two forms (a refusal's and its own)

/** The request form; `prefill` holds contract §13 fields (customer_id, cameras, window, …). */
export function askForm(prefill = {}, onSent = null) {
  forms += 1;
  const titleId = `ask-title-${forms}`;
  const now = new Date();
  const at = (text, fallback) => toLocalInput(text ? new Date(text) : fallback);
  const customer = h("input", {
    name: "customer_id",
    type: "text",
    required: true,
    value: prefill.customer_id || "",
  });
  const cameras = h("input", {
    name: "cameras",
    type: "text",
    required: true,
    value: (prefill.cameras || []).join(", "),
  });
  const from = h("input", {
    name: "footage_from",
    type: "datetime-local",
    required: true,
    value: at(prefill.footage_from, new Date(now.getTime() - 24 * 3600e3)),
  });
  const until = h("input", {
    name: "footage_until",
    type: "datetime-local",
    required: true,
    value: at(prefill.footage_until, now),
  });
  const purpose = select("purpose", PURPOSES, prefill.purpose || "customer_support");
  const ticket = h("input", {
    name: "ticket",
    type: "text",
    required: true,
    autocomplete: "off",
    value: prefill.ticket || "",
  });
  const reason = h("textarea", { name: "reason", rows: "3", required: true, maxlength: "2000" });
  const length = select(
    "duration_seconds",
    DURATIONS.map(([s, label]) => [String(s), label]),
    "3600",
  );
  const includePrivate = h("input", { type: "checkbox", name: "include_private" });
  includePrivate.id = `ask-private-${forms}`;
  const result = h("div", { class: "form-result" });
  const form = h(
    "form",
    { class: "card ask-form", "aria-labelledby": titleId },
    h("h2", { id: titleId, text: "Request access" }),
    h(
      "div",
      { class: "grid-2" },
      field("Customer", customer),
      field("Cameras", cameras, "Camera ids, separated by commas, or * for all."),
      field("Footage from", from),
      field("Footage until", until),
      field("Purpose", purpose),
      field("Ticket", ticket, "The case number: you will quote it in every request."),
      field("Access for", length, "How long the grant lasts once approved."),
    ),
    field("Reason", reason, "Why you need it: the customer reads this."),
    h(
      "p",
      { class: "check" },
      h("label", { for: includePrivate.id }, includePrivate, " Include private cameras"),
    ),
    h("button", { type: "submit", text: "Send request" }),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      customer_id: customer.value.trim(),
      cameras: cameras.value
        .split(",")
        .map((c) => c.trim())
        .filter(Boolean),
      footage_from: fromLocalInput(from.value),
      footage_until: fromLocalInput(until.value),
      purpose: purpose.value,
      ticket: ticket.value.trim(),
      reason: reason.value.trim(),
      duration_seconds: Number(length.value),
      include_private: includePrivate.checked,
    };
    const done = busy(form);
    try {
      const made = await api("POST", "/v1/access-requests", { body });
      form.replaceChildren(
        h("h2", { id: titleId, text: "Request sent" }),
        h(
          "p",
          { class: "notice", role: "status" },
          `Asked ${made.customer_id} (request `,
          h("code", { text: made.request_id }),
          `); it waits for an answer until `,
          when(made.expires_at),
          ".",
        ),
      );
      if (onSent) await onSent(made);
    } catch (err) {
      done();
      result.replaceChildren(errorBox(err));
    }
  });
  return form;
}

/** "My requests": what this staff member asked, newest first, Cancel on the pending ones. */
export async function renderMine(box, sub) {
  const title = h("h2", { id: "mine-title", text: "My requests" });
  let found;
  try {
    ({ access_requests: found } = await api("GET", "/v1/access-requests"));
  } catch (err) {
    box.replaceChildren(title, errorBox(err));
    return;
  }
  const mine = found.filter((r) => r.requester === sub);
  const columns = [
    ["State", (r) => badge(r.state, REQUEST_STATE[r.state] || "info")],
    ["Customer", (r) => h("code", { text: r.customer_id })],
    ["Cameras", (r) => cameraList(r.cameras)],
    ["Footage", footageWindow],
    ["Ticket", (r) => h("code", { text: r.ticket })],
    ["Asked", (r) => when(r.created_at, true)],
    ["Answer", (r) => answer(r)],
    ["", (r) => (r.state === "pending" ? cancelButton(r, box, sub) : "")],
  ];
  box.replaceChildren(
    title,
    mine.length
      ? table("Access requests you made, newest first", columns, mine)
      : h("p", { class: "empty", text: "You have not asked for access." }),
  );
}

function answer(r) {
  if (r.state === "approved")
    return h("span", {}, "grant ", h("code", { text: r.grant_id || "" }));
  if (r.state === "pending") return h("span", {}, "expires ", when(r.expires_at, true));
  return r.message ? h("span", { class: "justification", text: r.message }) : "—";
}

function cancelButton(r, box, sub) {
  const button = h("button", {
    type: "button",
    class: "secondary",
    text: "Cancel",
    "aria-label": `Cancel the request to ${r.customer_id} (ticket ${r.ticket})`,
  });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api("POST", path("/v1/access-requests", r.request_id, "cancel"));
      await renderMine(box, sub);
      box.append(statusLine(`Cancelled the request for ticket ${r.ticket}.`));
    } catch (err) {
      button.disabled = false;
      box.append(errorBox(err));
    }
  });
  return button;
}
