// Analyst: search the audit log with the contract's filters (principal, customer_id, decision,
// since, until, after_seq, limit) and page through it with next_after_seq. The search lives
// in the fragment (`#/audit?principal=…&after_seq=…`), so a result can be linked to.

import { api } from "../api.js";
import { append, field, fromLocalInput, h, link, select, toLocalInput } from "../dom.js";
import { eventTable } from "./events.js";

const FILTERS = ["principal", "customer_id", "decision", "since", "until", "limit"];
const LIMITS = ["25", "50", "100", "200", "500"];

export async function render(root, { params, navigate }) {
  root.append(searchForm(params, navigate));
  const query = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
  query.limit = LIMITS.includes(query.limit) ? query.limit : "50";
  query.after_seq = params.get("after_seq") || "";
  const result = await api("GET", "/v1/audit/events", { query });
  const events = result.events;
  const from = query.after_seq ? `after seq ${query.after_seq}` : "from the start of the log";
  append(root, [
    h("p", {
      class: "muted",
      role: "status",
      text: `${events.length} event${events.length === 1 ? "" : "s"} ${from}.`,
    }),
    events.length
      ? eventTable("Audit events, oldest first", events)
      : h("p", { class: "empty", text: "No events match." }),
    pager(params, query.after_seq, result.next_after_seq),
  ]);
}

function searchForm(params, navigate) {
  const text = (name) =>
    h("input", { name, type: "text", value: params.get(name) || "", autocomplete: "off" });
  const time = (name) => {
    const value = params.get(name);
    const date = value ? new Date(value) : null;
    return h("input", {
      name,
      type: "datetime-local",
      value: date && !Number.isNaN(date.getTime()) ? toLocalInput(date) : "",
    });
  };
  const controls = {
    principal: text("principal"),
    customer_id: text("customer_id"),
    decision: select(
      "decision",
      [
        ["", "any"],
        ["allow", "allowed"],
        ["deny", "denied"],
      ],
      params.get("decision") || "",
    ),
    since: time("since"),
    until: time("until"),
    limit: select(
      "limit",
      LIMITS.map((n) => [n, n]),
      LIMITS.includes(params.get("limit")) ? params.get("limit") : "50",
    ),
  };
  const form = h(
    "form",
    { class: "filters card", role: "search" },
    field("Principal", controls.principal),
    field("Customer", controls.customer_id),
    field("Decision", controls.decision),
    field("Since", controls.since, "Your local time"),
    field("Until", controls.until, "Your local time"),
    field("Per page", controls.limit),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", text: "Search" }),
      link("/audit", "Clear"),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, control] of Object.entries(controls)) {
      const value =
        control.type === "datetime-local" ? fromLocalInput(control.value) : control.value.trim();
      if (value) next.set(name, value);
    }
    navigate(`/audit?${next}`);
  });
  return form;
}

function pager(params, after, nextAfter) {
  const base = new URLSearchParams(params);
  base.delete("after_seq");
  const links = [];
  if (after) links.push(link(`/audit?${base}`, "← First page"));
  if (nextAfter !== null && nextAfter !== undefined) {
    const next = new URLSearchParams(base);
    next.set("after_seq", String(nextAfter));
    links.push(link(`/audit?${next}`, "Next page →"));
  }
  return links.length ? h("nav", { class: "pager", "aria-label": "Pages" }, links) : null;
}
