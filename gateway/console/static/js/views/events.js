// Audit events as a table, shared by the flag evidence, the principal timeline and the search.

import { badge, bytes, h, link, table, when } from "../dom.js";

/** "allow"/"deny" (or nothing, for events that are not decisions) as a badge. */
export function decisionBadge(event) {
  if (event.decision === "allow") return badge("allowed", "ok");
  if (event.decision === "deny") return badge("denied", "bad");
  return h("span", { class: "muted", text: "—" });
}

export function principalLink(sub) {
  if (!sub) return h("span", { class: "muted", text: "—" });
  return link(`/principal/${encodeURIComponent(sub)}`, sub);
}

/** customer / camera / clip, as far as the event names them. */
export function target(event) {
  const parts = [event.customer_id, event.camera_id, event.clip_id].filter(Boolean);
  if (!parts.length) return h("span", { class: "muted", text: "—" });
  return h("code", { class: "target", text: parts.join(" / ") });
}

function reasonOf(event) {
  const parts = [event.reason, event.status ? `HTTP ${event.status}` : null].filter(Boolean);
  return parts.join(" · ");
}

const COLUMNS = [
  ["Seq", (e) => String(e.seq ?? "")],
  ["When", (e) => when(e.ts)],
  ["Type", (e) => h("code", { text: e.type || "" })],
  [
    "Principal",
    (e) => [
      principalLink(e.principal),
      e.roles && e.roles.length
        ? h("small", { class: "muted block", text: e.roles.join(", ") })
        : null,
    ],
  ],
  ["Purpose", (e) => e.purpose || "—"],
  [
    "Justification",
    (e) => (e.justification ? h("span", { class: "justification", text: e.justification }) : "—"),
  ],
  ["Footage", target],
  [
    "Decision",
    (e) => [
      decisionBadge(e),
      reasonOf(e) ? h("small", { class: "muted block", text: reasonOf(e) }) : null,
    ],
  ],
  [
    "Bytes",
    (e) => (e.bytes_sent === null || e.bytes_sent === undefined ? "—" : bytes(e.bytes_sent)),
  ],
];

// Access decisions only (evidence, a principal's timeline): no type, and never bytes.
const DECISION_COLUMNS = COLUMNS.filter(([name]) => name !== "Type" && name !== "Bytes");

/** A table of audit events; `decisionsOnly` leaves out what access decisions never carry. */
export function eventTable(caption, events, decisionsOnly = false) {
  const columns = decisionsOnly ? DECISION_COLUMNS : COLUMNS;
  return table(caption, columns, events, (e) => (e.decision === "deny" ? "row-deny" : null));
}

/** The audit search for a principal, as a console link. */
export function searchLink(query, text) {
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v));
  return link(`/audit?${params}`, text);
}
