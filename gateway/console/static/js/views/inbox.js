// Customer: the access requests addressed to you (contract §13): who asks, why, the ticket,
// the cameras and the window; approve as asked or narrowed (fewer cameras, a shorter window or
// duration, private cameras only if asked), or deny with a message. Below, what you answered,
// and your notifications (GET /v1/me/notifications, contract §14).

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
import { cameraList, duration, footageWindow, REQUEST_STATE } from "./ask.js";

const DURATIONS = [900, 3600, 4 * 3600, 24 * 3600];
const KINDS = {
  "grant.first_use": "A grant was used for the first time",
  "grant.expiring": "A grant expires soon",
  "access.emergency": "Break-glass access to your footage",
  "access.legal_request": "Legal-request access to your footage",
  "access_request.created": "Someone asked for access",
  "access_request.approved": "An access request was approved",
  "access_request.denied": "An access request was denied",
  "access_request.expired": "An access request expired unanswered",
  "access_request.cancelled": "An access request was cancelled",
};

/** The number of requests waiting for this customer's answer, shown beside "Inbox". */
export async function updateBadge() {
  const link = document.querySelector('#nav a[href="#/inbox"]');
  if (!link) return;
  let count = 0;
  try {
    const { access_requests: found } = await api("GET", "/v1/access-requests", {
      query: { state: "pending" },
    });
    count = found.filter((r) => r.approver === "customer").length;
  } catch {
    return; // an older gateway, or a refusal: no badge rather than a wrong one
  }
  const old = link.querySelector(".count");
  if (old) old.remove();
  if (count)
    link.append(
      " ",
      h("span", {
        class: "count",
        text: String(count),
        "aria-label": `${count} waiting for your answer`,
      }),
    );
}

export async function render(root) {
  const pending = h("section", { class: "card", "aria-labelledby": "inbox-title" });
  const answered = h("section", { class: "card", "aria-labelledby": "answered-title" });
  const notes = h("section", { class: "card", "aria-labelledby": "notes-title" });
  const refresh = async () => {
    const { access_requests: all } = await api("GET", "/v1/access-requests");
    renderPending(pending, all, refresh);
    renderAnswered(answered, all);
    await updateBadge();
  };
  root.append(pending, answered, notes);
  await refresh();
  await renderNotifications(notes);
}

function renderPending(box, all, refresh) {
  const title = h("h2", { id: "inbox-title", text: "Waiting for your answer" });
  const waiting = all.filter((r) => r.state === "pending");
  box.replaceChildren(
    title,
    waiting.length
      ? h(
          "ul",
          { class: "requests" },
          waiting.map((r) => h("li", {}, requestCard(r, refresh))),
        )
      : h("p", { class: "empty", text: "Nobody is waiting for your answer." }),
  );
}

function fact(name, ...value) {
  return [h("dt", { text: name }), h("dd", {}, value)];
}

function requestCard(r, refresh) {
  const card = h("article", { class: "request", "aria-label": `Request from ${r.requester}` });
  const facts = h(
    "dl",
    { class: "facts compact" },
    fact("Who asks", h("strong", { text: r.requester })),
    fact("Why", h("span", { class: "justification reason", text: r.reason })),
    fact("Ticket", h("code", { text: r.ticket })),
    fact("Purpose", r.purpose),
    fact("Cameras", cameraList(r.cameras)),
    fact("Footage", footageWindow(r)),
    fact("For", duration(r.duration_seconds), " once approved"),
    fact("Private cameras", r.include_private ? "asked for" : "not asked for"),
    fact("Asked", when(r.created_at), "; expires unanswered ", when(r.expires_at)),
  );
  card.append(h("h3", { text: `${r.requester} asks to see your footage` }), facts);
  if (r.approver !== "customer") {
    card.append(
      h("p", {
        class: "muted",
        text: `This purpose is approved by staff (${r.approver_roles.join(", ")}), not by you; you will be told when it is answered.`,
      }),
    );
    return card;
  }
  card.append(approveForm(r, refresh), denyForm(r, refresh));
  return card;
}

function approveForm(r, refresh) {
  const id = r.request_id;
  const boxes = r.cameras.includes("*")
    ? []
    : r.cameras.map((c) =>
        h("input", { type: "checkbox", name: "camera", value: c, checked: true, id: `${id}-${c}` }),
      );
  const from = h("input", {
    type: "datetime-local",
    name: "footage_from",
    value: toLocalInput(new Date(r.footage_from)),
  });
  const until = h("input", {
    type: "datetime-local",
    name: "footage_until",
    value: toLocalInput(new Date(r.footage_until)),
  });
  const initial = { from: from.value, until: until.value };
  const lengths = [...new Set([r.duration_seconds, ...DURATIONS])]
    .filter((s) => s <= r.duration_seconds)
    .sort((a, b) => b - a);
  const length = select(
    "duration_seconds",
    lengths.map((s) => [String(s), duration(s)]),
    String(r.duration_seconds),
  );
  const priv = r.include_private
    ? h("input", { type: "checkbox", name: "include_private", checked: true, id: `${id}-priv` })
    : null;
  const result = h("div", { class: "form-result" });
  const form = h(
    "form",
    { class: "narrow-form", "aria-label": `Approve the request from ${r.requester}` },
    boxes.length
      ? h(
          "fieldset",
          { class: "checks" },
          h("legend", { text: "Cameras to allow" }),
          boxes.map((b) => h("label", { for: b.id }, b, ` ${b.value}`)),
        )
      : h("p", { class: "muted", text: "All cameras were asked for." }),
    h(
      "div",
      { class: "grid-2" },
      field("Footage from", from, "Only later than asked."),
      field("Footage until", until, "Only earlier than asked."),
      field("Access for", length),
    ),
    priv
      ? h("p", { class: "check" }, h("label", { for: priv.id }, priv, " Include private cameras"))
      : null,
    h("button", { type: "submit", text: "Approve" }),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    const kept = boxes.filter((b) => b.checked).map((b) => b.value);
    if (boxes.length && !kept.length) {
      result.replaceChildren(
        h("p", { class: "error", role: "alert", text: "Keep at least one camera, or deny." }),
      );
      return;
    }
    if (kept.length < boxes.length) body.cameras = kept;
    // Only what the customer changed: a minute-precise input must not widen the window.
    if (from.value !== initial.from) body.footage_from = fromLocalInput(from.value);
    if (until.value !== initial.until) body.footage_until = fromLocalInput(until.value);
    if (Number(length.value) !== r.duration_seconds) body.duration_seconds = Number(length.value);
    if (priv && !priv.checked) body.include_private = false;
    const done = busy(form);
    try {
      const approved = await api("POST", path("/v1/access-requests", id, "approve"), { body });
      await refresh();
      document
        .getElementById("inbox-title")
        .after(
          statusLine(
            `Approved: ${approved.requester} may see ${cameraList(approved.grant ? approved.grant.cameras : approved.cameras)} for ticket ${approved.ticket}.`,
          ),
        );
    } catch (err) {
      done();
      result.replaceChildren(errorBox(err));
    }
  });
  return form;
}

function denyForm(r, refresh) {
  const message = h("input", { type: "text", name: "message", maxlength: "2000" });
  const result = h("div", { class: "form-result" });
  const form = h(
    "form",
    { class: "inline-form deny-form", "aria-label": `Deny the request from ${r.requester}` },
    field("Message (optional)", message),
    h("button", { type: "submit", class: "danger", text: "Deny" }),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = message.value.trim();
    const done = busy(form);
    try {
      await api("POST", path("/v1/access-requests", r.request_id, "deny"), {
        body: text ? { message: text } : {},
      });
      await refresh();
    } catch (err) {
      done();
      result.replaceChildren(errorBox(err));
    }
  });
  return form;
}

function renderAnswered(box, all) {
  const title = h("h2", { id: "answered-title", text: "Answered and closed" });
  const done = all.filter((r) => r.state !== "pending");
  const columns = [
    ["State", (r) => badge(r.state, REQUEST_STATE[r.state] || "info")],
    ["Who asked", (r) => r.requester],
    ["Why", (r) => h("span", { class: "justification", text: r.reason })],
    ["Ticket", (r) => h("code", { text: r.ticket })],
    ["Cameras", (r) => cameraList(r.cameras)],
    ["Answered", (r) => when(r.answered_at, true)],
    ["Message", (r) => r.message || "—"],
  ];
  box.replaceChildren(
    title,
    done.length
      ? table("Requests answered, cancelled or expired", columns, done)
      : h("p", { class: "empty", text: "Nothing answered yet." }),
  );
}

async function renderNotifications(box) {
  const title = h("h2", { id: "notes-title", text: "Notifications" });
  let found;
  try {
    ({ notifications: found } = await api("GET", "/v1/me/notifications"));
  } catch (err) {
    box.replaceChildren(title, errorBox(err));
    return;
  }
  const columns = [
    ["When", (n) => when(n.created_at, true)],
    ["What", (n) => KINDS[n.kind] || n.kind],
    ["Who", (n) => (n.data && (n.data.principal || n.data.requester || n.data.grantee)) || "—"],
    ["Details", (n) => h("span", { class: "justification", text: summary(n.data || {}) })],
    ["Sent", (n) => n.state],
  ];
  box.replaceChildren(
    title,
    found.length
      ? table("Notifications, newest first", columns, found)
      : h("p", { class: "empty", text: "No notifications yet." }),
  );
}

function summary(data) {
  const parts = [];
  if (data.purpose) parts.push(data.purpose);
  if (data.justification) parts.push(data.justification);
  else if (data.ticket) parts.push(`ticket ${data.ticket}`);
  if (data.camera_id) parts.push(`${data.camera_id} / ${data.clip_id || ""}`);
  if (data.state) parts.push(data.state);
  return parts.join(" · ") || "—";
}
