// Customer: "who looked at my footage", newest first, allowed and denied alike, with the role,
// purpose and justification each person gave; one entry per playback with what it covered,
// and above it who is watching right now, each with a Stop button.
// `#/access?before_seq=N` pages back in time.

import { api, isMissing, path } from "../api.js";
import { badge, bytes, errorBox, h, link, statusLine, when } from "../dom.js";

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
  grant_revoked: "you revoked the grant it relied on",
  grant_expired: "the grant it relied on has expired",
};

export async function render(root, { params, session }) {
  const before = params.get("before_seq") || "";
  const log = await api("GET", "/v1/me/access-log", { query: { limit: 50, before_seq: before } });
  if (!before) {
    const live = h("section", { class: "card watching", "aria-labelledby": "watching-title" });
    root.append(live);
    await renderWatching(live, session);
  }
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
  const action =
    e.action === "list" ? "listed the clips of" : e.action === "playback" ? "played" : "viewed";
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
      playbackFacts(e),
      e.grant_id ? fact("Under grant", h("code", { text: e.grant_id })) : null,
    ),
  );
}

// A playback is one entry (contract §12): how many requests went through it, the bytes sent,
// how much of the clip they covered, and whether someone is still watching or why it ended.
const ENDED = {
  idle: "nobody asked for more for a while",
  max_age: "it reached its maximum age",
  revoked: "you revoked the grant",
  grant_expired: "the grant expired",
  suspended: "their account was suspended",
  ended: "they stopped it",
  ended_by_customer: "you stopped it",
};

function playbackFacts(e) {
  const p = e.playback;
  if (!p || typeof p !== "object") return null;
  const requests = Number(p.requests) || 0;
  const share = p.coverage === null || p.coverage === undefined ? NaN : Number(p.coverage);
  return [
    fact(
      "Playback",
      `${requests} request${requests === 1 ? "" : "s"}, ${bytes(p.bytes_sent || 0)} sent`,
    ),
    Number.isFinite(share) ? fact("Watched", `${percent(share)} of the clip`) : null,
    p.live
      ? fact("Now", badge("watching now", "warn"))
      : p.ended_reason
        ? fact("Ended", ENDED[p.ended_reason] || p.ended_reason, " ", when(p.ended_at, true))
        : null,
  ];
}

function percent(share) {
  if (share > 0 && share < 0.01) return "less than 1%";
  return `${Math.round(share * 100)}%`;
}

// "Watching now": live playback sessions on my footage; I can end any of them.
async function renderWatching(box, session) {
  const title = h("h2", { id: "watching-title", text: "Watching now" });
  let sessions;
  try {
    ({ sessions } = await api("GET", "/v1/playback"));
  } catch (err) {
    if (isMissing(err)) box.remove();
    else box.replaceChildren(title, errorBox(err));
    return;
  }
  if (!sessions.length) {
    box.replaceChildren(title, h("p", { class: "empty", text: "Nobody is watching your footage." }));
    return;
  }
  box.replaceChildren(
    title,
    h(
      "ul",
      { class: "sessions", "aria-label": "Live playback sessions" },
      sessions.map((s) => liveSession(s, session, box)),
    ),
  );
}

function liveSession(s, session, box) {
  const you = s.principal === session.claims.sub;
  const roles = (s.roles || []).map((r) => ROLE_NAMES[r] || r).join(", ");
  const stop = h("button", {
    type: "button",
    class: "danger",
    text: "Stop",
    "aria-label": `Stop ${you ? "your" : `${s.principal}'s`} playback of ${s.clip_id}`,
  });
  stop.addEventListener("click", async () => {
    stop.disabled = true;
    try {
      await api("DELETE", path("/v1/playback", s.session_id));
      await renderWatching(box, session);
      box.append(statusLine(`Stopped: ${you ? "your" : `${s.principal}'s`} playback has ended.`));
    } catch (err) {
      stop.disabled = false;
      box.append(errorBox(err));
    }
  });
  return h(
    "li",
    { class: "entry entry-live" },
    h(
      "p",
      { class: "entry-who" },
      h("strong", { text: you ? "You" : s.principal }),
      roles && !you ? ` (${roles})` : "",
      " is watching ",
      h("code", { text: [s.camera_id, s.clip_id].filter(Boolean).join(" / ") }),
    ),
    h(
      "dl",
      { class: "facts compact" },
      s.purpose ? fact("Purpose", PURPOSES[s.purpose] || s.purpose) : null,
      s.justification
        ? fact("Justification", h("span", { class: "justification", text: s.justification }))
        : null,
      s.started_at ? fact("Since", when(s.started_at)) : null,
      s.requests !== undefined && s.requests !== null ? fact("Requests", String(s.requests)) : null,
      s.bytes_sent !== undefined && s.bytes_sent !== null
        ? fact("Bytes sent", bytes(s.bytes_sent))
        : null,
      s.grant_id ? fact("Under grant", h("code", { text: s.grant_id })) : null,
    ),
    stop,
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
