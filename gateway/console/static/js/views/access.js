// Customer: "who looked at my footage", newest first, allowed and denied alike, with the role,
// purpose and justification each person gave. `#/access?before_seq=N` pages back in time.

import { api } from "../api.js";
import { badge, bytes, h, link, when } from "../dom.js";

const ROLE_NAMES = {
  customer: "you",
  support_agent: "support agent",
  support_lead: "support lead",
  trust_safety: "trust & safety",
  legal: "legal",
  security_analyst: "security analyst",
  admin: "administrator",
};
const PURPOSES = {
  customer_support: "customer support",
  safety_investigation: "safety investigation",
  legal_request: "legal request",
  emergency: "emergency (break-glass)",
  model_training: "model training",
};

// The contract's denial codes (§5), said plainly; the code itself stays visible too.
const REASONS = {
  no_grant: "no grant from you covers this request",
  zone_restricted: "the camera's zone does not allow it",
  purpose_required: "no purpose was given",
  justification_required: "no ticket or case was given",
  purpose_not_permitted: "that purpose is not allowed",
  principal_suspended: "their account is suspended",
  not_owner: "it is not their footage",
  retention_expired: "the footage is past retention",
  forbidden: "the policy does not allow it",
};

export async function render(root, { params, session }) {
  const before = params.get("before_seq") || "";
  const log = await api("GET", "/v1/me/access-log", { query: { limit: 50, before_seq: before } });
  root.append(
    h("p", {
      class: "muted",
      text: "Every request for your footage, by anyone, allowed or refused. Newest first.",
    }),
  );
  if (!log.events.length) {
    root.append(
      h("p", {
        class: "empty",
        text: before ? "No older entries." : "Nobody has asked for your footage yet.",
      }),
    );
  } else {
    root.append(
      h(
        "ol",
        { class: "timeline", "aria-label": "Access history" },
        log.events.map((e) => entry(e, session)),
      ),
    );
  }
  const nav = [];
  if (before) nav.push(link("/access", "← Newest"));
  if (log.next_before_seq)
    nav.push(link(`/access?before_seq=${log.next_before_seq}`, "Older entries →"));
  if (nav.length) root.append(h("nav", { class: "pager", "aria-label": "Pages" }, nav));
}

function entry(e, session) {
  const allowed = e.decision === "allow";
  const you = e.principal === session.claims.sub;
  // No valid token: whoever it was, nothing they wrote is shown as a staff statement.
  const anonymous = e.authenticated === false || !e.principal;
  const roles = (e.roles || []).map((r) => ROLE_NAMES[r] || r).join(", ");
  const clip = [e.camera_id, e.clip_id].filter(Boolean).join(" / ");
  const action = e.action === "list" ? "listed the clips of" : "viewed";
  return h(
    "li",
    { class: allowed ? "entry entry-allow" : "entry entry-deny" },
    h(
      "div",
      { class: "entry-head" },
      when(e.ts),
      allowed ? badge("allowed", "ok") : badge("denied", "bad"),
    ),
    h(
      "p",
      { class: "entry-who" },
      h("strong", { text: you ? "You" : anonymous ? "Someone without a valid sign-in" : e.principal }),
      roles && !you ? ` (${roles})` : "",
      allowed ? ` ${action} ` : ` asked for `,
      h("code", { text: clip || "your footage" }),
    ),
    h(
      "dl",
      { class: "facts compact" },
      e.purpose && !anonymous ? fact("Purpose", PURPOSES[e.purpose] || e.purpose) : null,
      e.justification && !anonymous
        ? fact("Justification", h("span", { class: "justification", text: e.justification }))
        : null,
      allowed ? null : fact("Refused because", refusal(e.reason)),
      e.range ? fact("Range", e.range) : null,
      e.bytes_sent !== null && e.bytes_sent !== undefined
        ? fact("Bytes sent", bytes(e.bytes_sent))
        : null,
      e.completed === false ? fact("Stream", "interrupted") : null,
      e.grant_id ? fact("Under grant", h("code", { text: e.grant_id })) : null,
    ),
  );
}

function refusal(code) {
  if (!code) return "denied";
  return REASONS[code]
    ? [REASONS[code], " ", h("code", { class: "muted", text: `(${code})` })]
    : code;
}

function fact(name, value) {
  return [h("dt", { text: name }), h("dd", {}, value)];
}
