// Customer: the grants they issued (state, use count, revoke) and a form to grant access.
// Staff: the grants addressed to them or their role, read-only.

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
import { isCustomer } from "../session.js";

const STATE = { active: "ok", expired: "info", revoked: "bad" };
const PURPOSES = [
  ["customer_support", "Customer support"],
  ["safety_investigation", "Safety investigation"],
];
const ROLE_GRANTEES = ["role:support_agent", "role:support_lead", "role:trust_safety"];

export async function render(root, { session, heading }) {
  const list = h("section", { class: "card", "aria-labelledby": "grants-title" });
  if (!isCustomer(session)) {
    heading.textContent = "Grants addressed to you";
    root.append(list);
    await renderList(list, false);
    return;
  }
  const cameras = await api("GET", path("/v1/cameras", session.claims.customerId));
  root.append(list, grantForm(cameras.cameras, list));
  await renderList(list, true);
}

async function renderList(box, owner) {
  const { grants } = await api("GET", "/v1/grants");
  const title = h("h2", { id: "grants-title", text: owner ? "Grants you gave" : "Grants" });
  if (!grants.length) {
    box.replaceChildren(
      title,
      h("p", {
        class: "empty",
        text: owner ? "You have not granted anyone access." : "No grant names you or your roles.",
      }),
    );
    return;
  }
  const columns = [
    ["State", (g) => badge(g.state, STATE[g.state] || "info")],
    [owner ? "Grantee" : "Customer", (g) => (owner ? g.grantee : g.customer_id)],
    ["Purpose", (g) => g.purpose],
    ["Cameras", (g) => (g.cameras.includes("*") ? "all cameras" : g.cameras.join(", "))],
    [
      "Footage",
      (g) =>
        h(
          "span",
          { class: "window" },
          when(g.footage_from, true),
          " → ",
          when(g.footage_until, true),
        ),
    ],
    ["Expires", (g) => when(g.expires_at, true)],
    ["Ticket", (g) => h("code", { text: g.ticket })],
    ["Private", (g) => (g.include_private ? "included" : "excluded")],
    ["Uses", (g) => String(g.use_count ?? 0)],
  ];
  if (owner) columns.push(["", (g) => (g.state === "active" ? revokeButton(g, box) : "")]);
  box.replaceChildren(
    title,
    table(owner ? "Grants you gave, newest first" : "Grants addressed to you", columns, grants),
  );
}

function revokeButton(grant, box) {
  const button = h("button", {
    type: "button",
    class: "danger",
    text: "Revoke",
    "aria-label": `Revoke the grant to ${grant.grantee} (ticket ${grant.ticket})`,
  });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api("DELETE", path("/v1/grants", grant.grant_id));
      await renderList(box, true);
      box.append(statusLine(`Revoked: ${grant.grantee} can no longer use ticket ${grant.ticket}.`));
    } catch (err) {
      button.disabled = false;
      box.append(errorBox(err));
    }
  });
  return button;
}

function grantForm(cameras, list) {
  const now = new Date();
  const grantee = h("input", {
    name: "grantee",
    type: "text",
    required: true,
    list: "grantee-roles",
    autocomplete: "off",
  });
  const ticket = h("input", {
    name: "ticket",
    type: "text",
    required: true,
    pattern: "[A-Za-z0-9][A-Za-z0-9_.:#/\\-]{1,99}",
    autocomplete: "off",
  });
  const from = h("input", {
    name: "footage_from",
    type: "datetime-local",
    required: true,
    value: toLocalInput(new Date(now.getTime() - 24 * 3600e3)),
  });
  const until = h("input", {
    name: "footage_until",
    type: "datetime-local",
    required: true,
    value: toLocalInput(now),
  });
  const expires = h("input", {
    name: "expires_at",
    type: "datetime-local",
    required: true,
    value: toLocalInput(new Date(now.getTime() + 4 * 3600e3)),
  });
  const purpose = select("purpose", PURPOSES, "customer_support");
  const all = h("input", { type: "checkbox", name: "all_cameras", id: "cam-all" });
  const boxes = cameras.map((c) =>
    h("input", { type: "checkbox", name: "camera", value: c.camera_id, id: `cam-${c.camera_id}` }),
  );
  const includePrivate = h("input", {
    type: "checkbox",
    name: "include_private",
    id: "include-private",
  });
  const result = h("div", { class: "form-result" });
  all.addEventListener("change", () => boxes.forEach((b) => (b.disabled = all.checked)));

  const cameraSet = h(
    "fieldset",
    { class: "checks" },
    h("legend", { text: "Cameras" }),
    h("label", { for: "cam-all" }, all, " All cameras"),
    cameras.map((c, i) =>
      h(
        "label",
        { for: boxes[i].id },
        boxes[i],
        ` ${c.label || c.camera_id} `,
        h("small", { class: "muted", text: `(${c.zone})` }),
      ),
    ),
  );
  const form = h(
    "form",
    { class: "card grant-form", "aria-labelledby": "grant-title" },
    h("h2", { id: "grant-title", text: "Grant access" }),
    h(
      "div",
      { class: "grid-2" },
      field(
        "Grantee",
        grantee,
        "A person (their sign-in name) or a whole role, e.g. role:support_agent",
      ),
      field("Purpose", purpose),
      field("Ticket", ticket, "The case number: staff must quote it in every request."),
      field("Access expires", expires),
      field("Footage from", from),
      field("Footage until", until),
    ),
    h(
      "datalist",
      { id: "grantee-roles" },
      ROLE_GRANTEES.map((r) => h("option", { value: r })),
    ),
    cameraSet,
    h(
      "p",
      { class: "check" },
      h(
        "label",
        { for: "include-private" },
        includePrivate,
        " Include private cameras (bedroom, bathroom, nursery)",
      ),
    ),
    h("button", { type: "submit", text: "Grant access" }),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = all.checked ? ["*"] : boxes.filter((b) => b.checked).map((b) => b.value);
    if (!chosen.length) {
      result.replaceChildren(
        h("p", { class: "error", role: "alert", text: "Choose at least one camera." }),
      );
      return;
    }
    const body = {
      grantee: grantee.value.trim(),
      purpose: purpose.value,
      cameras: chosen,
      footage_from: fromLocalInput(from.value),
      footage_until: fromLocalInput(until.value),
      expires_at: fromLocalInput(expires.value),
      ticket: ticket.value.trim(),
      include_private: includePrivate.checked,
    };
    const done = busy(form);
    try {
      const grant = await api("POST", "/v1/grants", { body });
      done();
      grantee.value = "";
      ticket.value = "";
      result.replaceChildren(
        h(
          "p",
          { class: "notice", role: "status" },
          `Granted ${grant.grantee} access for ticket ${grant.ticket} until `,
          when(grant.expires_at),
          ".",
        ),
      );
      await renderList(list, true);
    } catch (err) {
      done();
      result.replaceChildren(errorBox(err));
    }
  });
  return form;
}
