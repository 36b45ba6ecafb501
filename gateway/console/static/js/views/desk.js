// Staff desk: watch a customer's footage that a grant addressed to you covers. The purpose and
// justification are declared once and kept in this module's memory for the session: never in
// storage or the URL, forgotten on sign-out, on a switch of session and on reload. Every
// request then sends them (X-Access-Purpose, X-Access-Justification), and the API decides.

import { api, path } from "../api.js";
import { badge, bytes, errorBox, field, h, select, statusLine, table, when } from "../dom.js";
import { play, refusal, stop } from "../player.js";
import * as sessionState from "../session.js";
import { askForm, askOffer, renderMine } from "./ask.js";

// The purposes each staff role may declare for footage (policies/policy.csv); the API still
// decides every request, this only spares a choice that would always be refused.
const ROLE_PURPOSES = {
  support_agent: ["customer_support"],
  support_lead: ["customer_support", "emergency"],
  trust_safety: ["safety_investigation", "emergency"],
  legal: ["legal_request"],
};
const PURPOSE_NAMES = {
  customer_support: "Customer support",
  safety_investigation: "Safety investigation",
  legal_request: "Legal request",
  emergency: "Emergency (break-glass)",
};
const STATE = { active: "ok", expired: "info", revoked: "bad" };

let declared = null; // {purpose, justification}, this tab's memory only
sessionState.onChange(() => {
  declared = null;
});

/** True when the session's roles may watch footage at the desk. */
export function canWatch(s) {
  return s.claims.roles.some((r) => r in ROLE_PURPOSES);
}

function purposesOf(s) {
  const found = s.claims.roles.flatMap((r) => ROLE_PURPOSES[r] || []);
  return [...new Set(found)];
}

function headers() {
  return declared
    ? { "X-Access-Purpose": declared.purpose, "X-Access-Justification": declared.justification }
    : {};
}

export async function render(root, { session }) {
  const purpose = h("section", { class: "card", "aria-labelledby": "purpose-title" });
  const grants = h("section", { class: "card", "aria-labelledby": "desk-grants-title" });
  const footage = h("section", { class: "card desk-footage", "aria-labelledby": "footage-title" });
  footage.hidden = true;
  const mine = h("section", { class: "card", "aria-labelledby": "mine-title" });
  const sent = () => renderMine(mine, session.claims.sub);
  const open = (grant, customerId, cameraId) =>
    openFootage(footage, grant, customerId, cameraId, sent);
  // Built once, kept across refreshes: what someone is typing survives the grants reloading.
  const lookup = lookupForm(open);
  let ask = blankAsk(sent);
  const refresh = async (close = false) => {
    if (close) {
      const slot = footage.querySelector(".player-slot");
      if (slot) await stop(slot);
      footage.replaceChildren();
      footage.hidden = true;
      ask = blankAsk(sent); // a half-written request carried the old purpose's ticket
    }
    renderPurpose(purpose, session, refresh);
    lookup.querySelector("button[type=submit]").disabled = !declared;
    await renderGrants(grants, open, lookup, ask);
    await sent();
  };
  root.append(
    h("p", {
      class: "muted",
      text: "Open a customer's footage that a grant addressed to you covers. Every clip you list or play is recorded in the customer's access log with your purpose and justification.",
    }),
    purpose,
    grants,
    footage,
    mine,
  );
  await refresh();
}

function renderPurpose(box, session, changed) {
  const title = h("h2", { id: "purpose-title", text: "Your purpose" });
  if (declared) {
    const change = h("button", { type: "button", class: "secondary", text: "Change" });
    change.addEventListener("click", async () => {
      declared = null; // and what was opened under the old purpose closes with it
      await changed(true);
    });
    box.replaceChildren(
      title,
      h(
        "dl",
        { class: "facts compact declared" },
        [h("dt", { text: "Purpose" }), h("dd", { text: PURPOSE_NAMES[declared.purpose] })],
        [
          h("dt", { text: "Justification" }),
          h("dd", {}, h("span", { class: "justification", text: declared.justification })),
        ],
      ),
      h("p", {
        class: "muted",
        text: "Sent with every request from this desk. Kept in this tab's memory only: reloading or signing out forgets it.",
      }),
      change,
    );
    return;
  }
  const purposes = purposesOf(session);
  const choice = select(
    "purpose",
    purposes.map((p) => [p, PURPOSE_NAMES[p] || p]),
    purposes[0],
  );
  const justification = h("input", {
    name: "justification",
    type: "text",
    required: true,
    maxlength: "200",
    autocomplete: "off",
  });
  const form = h(
    "form",
    { class: "inline-form", "aria-labelledby": "purpose-title" },
    field("Purpose", choice),
    field("Justification", justification, "The ticket or case you are working on."),
    h("button", { type: "submit", text: "Declare" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = justification.value.trim();
    if (!text) return;
    declared = { purpose: choice.value, justification: text };
    await changed();
  });
  box.replaceChildren(
    title,
    h("p", {
      class: "muted",
      text: "Declare why you are looking, once for this session. The customer sees it beside every request.",
    }),
    form,
  );
}

async function renderGrants(box, open, lookup, ask) {
  const title = h("h2", { id: "desk-grants-title", text: "Grants addressed to you" });
  let list;
  try {
    ({ grants: list } = await api("GET", "/v1/grants"));
  } catch (err) {
    box.replaceChildren(title, errorBox(err));
    return;
  }
  const active = list.filter((g) => g.state === "active");
  const columns = [
    ["Customer", (g) => h("code", { text: g.customer_id })],
    ["Purpose", (g) => PURPOSE_NAMES[g.purpose] || g.purpose],
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
    ["", (g) => openButton(g, open)],
  ];
  box.replaceChildren(
    title,
    active.length
      ? table("Active grants addressed to you or your roles", columns, active)
      : h("p", { class: "empty", text: "No active grant names you or your roles." }),
    lookup,
    ask,
  );
}

// Ask for access without a refusal first: the form, empty but for the declared ticket.
function blankAsk(sent) {
  const slot = h("div", { class: "ask-slot" });
  const button = h("button", { type: "button", class: "secondary", text: "Request access…" });
  button.addEventListener("click", () => slot.replaceChildren(askForm(declaredAsk(), sent)));
  slot.append(button);
  return slot;
}

// What the desk knows to put in a request: the declared purpose, and the ticket (the first
// word of the justification, which is where the desk asks for it).
function declaredAsk() {
  if (!declared) return {};
  return { purpose: declared.purpose, ticket: declared.justification.split(/\s+/)[0] };
}

function openButton(grant, open) {
  const button = h("button", {
    type: "button",
    text: "Open",
    disabled: !declared,
    title: declared ? null : "Declare your purpose first",
    "aria-label": `Open ${grant.customer_id}'s footage (ticket ${grant.ticket})`,
  });
  const first = grant.cameras.includes("*") ? "" : grant.cameras[0];
  button.addEventListener("click", () => open(grant, grant.customer_id, first));
  return button;
}

// Without a grant (legal requests, break-glass) or to name a camera yourself.
function lookupForm(open) {
  const customer = h("input", { name: "customer", type: "text", required: true });
  const camera = h("input", { name: "camera", type: "text", required: true });
  const form = h(
    "form",
    { class: "inline-form lookup", "aria-label": "Open a camera by id" },
    field("Customer", customer),
    field("Camera", camera),
    h("button", { type: "submit", class: "secondary", text: "Open camera", disabled: true }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!declared) return;
    open(null, customer.value.trim(), camera.value.trim());
  });
  return form;
}

async function openFootage(box, grant, customerId, cameraId, sent) {
  const old = box.querySelector(".player-slot");
  if (old) await stop(old);
  box.hidden = false;
  const title = h("h2", { id: "footage-title", tabindex: "-1", text: `Footage of ${customerId}` });
  const about = grant
    ? h(
        "p",
        { class: "grant-line" },
        "Under grant ",
        h("code", { text: grant.grant_id }),
        ` (ticket ${grant.ticket}), `,
        badge(grant.state, STATE[grant.state] || "info"),
        " until ",
        when(grant.expires_at),
      )
    : h("p", { class: "muted", text: "No grant chosen: the policy alone decides." });
  const clips = h("div", { class: "clips" });
  const player = h("div", { class: "player-slot" });
  const cameras = grant && !grant.cameras.includes("*") ? grant.cameras : null;
  const camera = cameras
    ? select(
        "camera",
        cameras.map((c) => [c, c]),
        cameraId,
      )
    : h("input", { name: "camera", type: "text", required: true, value: cameraId || "" });
  const form = h(
    "form",
    { class: "inline-form" },
    field("Camera", camera),
    h("button", { type: "submit", text: "List clips" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await stop(player);
    player.replaceChildren();
    await listClips(clips, player, customerId, camera.value.trim(), sent);
  });
  box.replaceChildren(title, about, form, player, clips);
  title.focus();
  if (camera.value) await listClips(clips, player, customerId, camera.value.trim(), sent);
}

// Play options at the desk: the declared headers, and after a refusal that an access request
// cures, the offer to ask for this clip's window (five minutes either side of its recording).
function playing(c, sent) {
  const at = new Date(c.recorded_at).getTime();
  const around = {
    ...declaredAsk(),
    footage_from: new Date(at - 5 * 60e3).toISOString(),
    footage_until: new Date(at + 5 * 60e3).toISOString(),
  };
  return { headers: headers(), onRefused: (err) => askOffer(err, around, sent) };
}

async function listClips(box, player, customerId, cameraId, sent) {
  box.replaceChildren(statusLine("Loading clips…"));
  try {
    const { clips } = await api("GET", path("/v1/footage", customerId, cameraId), {
      headers: headers(),
    });
    const clip = (c) => ({ customer_id: customerId, camera_id: cameraId, clip_id: c.clip_id });
    box.replaceChildren(
      clips.length
        ? table(
            `Clips of ${customerId} / ${cameraId}`,
            [
              ["Recorded", (c) => when(c.recorded_at)],
              ["Clip", (c) => h("code", { text: c.clip_id })],
              ["Size", (c) => bytes(c.size)],
              [
                "",
                (c) =>
                  h("button", {
                    type: "button",
                    text: "Play",
                    "aria-label": `Play clip ${c.clip_id}`,
                    on: { click: () => play(player, clip(c), playing(c, sent)) },
                  }),
              ],
            ],
            clips,
          )
        : h("p", { class: "empty", text: "No clips in the window you may see." }),
    );
  } catch (err) {
    // A refusal that an access request cures offers one, prefilled (contract §13).
    const ticket = declaredAsk().ticket;
    box.replaceChildren(refusal(err, "Refused"));
    const offer = askOffer(err, ticket ? { ticket } : {}, sent);
    if (offer) box.append(offer);
  }
}
