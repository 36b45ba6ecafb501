// Analyst: one principal's status (suspend / reinstate) and a timeline of their footage access.
// `#/principal` asks for a sub; `#/principal/<sub>?hours=24|168` shows one.

import { api, auditEvents, isMissing, path } from "../api.js";
import {
  badge,
  busy,
  errorBox,
  field,
  fill,
  h,
  link,
  plainValue,
  statusLine,
  when,
} from "../dom.js";
import { activityChart, hourly } from "../chart.js";
import { eventTable, searchLink } from "./events.js";

const RANGES = [
  ["24", "Last 24 hours"],
  ["168", "Last 7 days"],
];
const STATUS_KEYS = new Set([
  "sub",
  "status",
  "reason",
  "changed_at",
  "changed_by",
  "open_flags",
  "flags",
  "activity",
]);
const TABLE_ROWS = 200;

export async function render(root, { segments, params, heading, navigate }) {
  const sub = segments[0];
  if (!sub) {
    root.append(lookupForm(navigate));
    await flaggedPrincipals(root);
    return;
  }
  heading.textContent = `Principal: ${sub}`;
  const statusBox = h("section", { class: "card status", "aria-labelledby": "status-title" });
  const chart = h("section", { class: "card activity", "aria-labelledby": "activity-title" });
  const timeline = h("section", {
    class: "card timeline-card",
    "aria-labelledby": "timeline-title",
  });
  root.append(h("div", { class: "principal-grid" }, statusBox, chart), timeline);
  await Promise.all([renderStatus(statusBox, sub), renderActivity(chart, timeline, sub, params)]);
}

function lookupForm(navigate) {
  const input = h("input", { name: "sub", type: "text", required: true, autocomplete: "off" });
  const form = h(
    "form",
    { class: "inline-form lookup", role: "search" },
    field("Principal (sub)", input),
    h("button", { type: "submit", text: "Open" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.value.trim()) navigate(`/principal/${encodeURIComponent(input.value.trim())}`);
  });
  return form;
}

async function flaggedPrincipals(root) {
  let flags;
  try {
    flags = (await api("GET", "/v1/flags", { query: { status: "open" } })).flags;
  } catch (err) {
    if (isMissing(err)) return;
    throw err;
  }
  const subs = [...new Set(flags.map((f) => f.principal))];
  const section = h("section", { class: "card" }, h("h2", { text: "Principals with open flags" }));
  section.append(
    subs.length
      ? h(
          "ul",
          {},
          subs.map((sub) => h("li", {}, link(`/principal/${encodeURIComponent(sub)}`, sub))),
        )
      : h("p", { class: "empty", text: "No principal has an open flag." }),
  );
  root.append(section);
}

async function renderStatus(box, sub) {
  box.replaceChildren(h("h2", { id: "status-title", text: "Status" }), statusLine("Loading…"));
  let info;
  try {
    info = await api("GET", path("/v1/principals", sub));
  } catch (err) {
    box.replaceChildren(h("h2", { id: "status-title", text: "Status" }), errorBox(err));
    return;
  }
  const suspended = info.status === "suspended";
  const facts = h(
    "dl",
    { class: "facts" },
    fact(
      "Status",
      suspended ? badge("suspended", "bad") : badge(String(info.status || "active"), "ok"),
    ),
    info.reason ? fact("Reason", info.reason) : null,
    info.changed_at ? fact("Changed", when(info.changed_at)) : null,
    info.changed_by ? fact("By", info.changed_by) : null,
    flagFacts(info.open_flags ?? info.flags),
    activityFact(info.activity),
    Object.entries(info)
      .filter(([key, value]) => !STATUS_KEYS.has(key) && value !== null && value !== undefined)
      .map(([key, value]) => fact(key.replace(/_/g, " "), plainValue(value))),
  );
  box.replaceChildren(
    h("h2", { id: "status-title", text: "Status" }),
    facts,
    statusForm(box, sub, suspended),
  );
}

function fact(name, value) {
  return [h("dt", { text: name }), h("dd", {}, value)];
}

function flagFacts(flags) {
  if (flags === undefined || flags === null) return null;
  if (!Array.isArray(flags)) return fact("Open flags", String(flags));
  if (!flags.length) return fact("Open flags", "none");
  return fact(
    "Open flags",
    h(
      "ul",
      { class: "plain" },
      flags.map((f) =>
        typeof f === "object"
          ? h(
              "li",
              {},
              link(`/flags/${encodeURIComponent(f.flag_id)}`, `${f.rule} (${f.severity})`),
              " ",
              when(f.created_at),
            )
          : h("li", { text: String(f) }),
      ),
    ),
  );
}

// The detector's counts for the last hour ("views_last_hour": 10 …) as one line.
function activityFact(activity) {
  if (!activity || typeof activity !== "object") return null;
  const counts = Object.entries(activity).filter(
    ([k, v]) => k.endsWith("_last_hour") && typeof v === "number",
  );
  if (!counts.length) return fact("Activity", plainValue(activity));
  const text = counts
    .map(([k, v]) => `${v} ${k.replace(/_last_hour$/, "").replace(/_/g, " ")}`)
    .join(" · ");
  return fact("Last hour", text);
}

function statusForm(box, sub, suspended) {
  const reason = h("input", {
    name: "reason",
    type: "text",
    maxlength: "500",
    autocomplete: "off",
  });
  const result = h("div", { class: "form-result" });
  const action = suspended ? "reinstate" : "suspend";
  const form = h(
    "form",
    { class: "inline-form" },
    field(
      "Reason",
      reason,
      suspended
        ? "Why this principal may act again."
        : "Why: a suspended principal gets 403 on everything.",
    ),
    h("button", {
      type: "submit",
      class: suspended ? "" : "danger",
      text: suspended ? "Reinstate" : "Suspend",
    }),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const done = busy(form);
    try {
      await api("POST", `${path("/v1/principals", sub)}/${action}`, {
        body: { reason: reason.value.trim() },
      });
      await renderStatus(box, sub);
      box.append(statusLine(suspended ? `${sub} is reinstated.` : `${sub} is suspended.`));
    } catch (err) {
      done();
      result.replaceChildren(errorBox(err));
    }
  });
  return form;
}

async function renderActivity(box, timeline, sub, params) {
  const hours = RANGES.some(([v]) => v === params.get("hours")) ? Number(params.get("hours")) : 24;
  const until = new Date();
  const since = new Date(until.getTime() - hours * 3600e3);
  const ranges = h(
    "nav",
    { class: "tabs", "aria-label": "Time range" },
    RANGES.map(([value, text]) =>
      h("a", {
        class: "tab",
        href: `#/principal/${encodeURIComponent(sub)}?hours=${value}`,
        text,
        "aria-current": Number(value) === hours ? "page" : null,
      }),
    ),
  );
  const title = () => h("h2", { id: "activity-title", text: "Footage requests per hour" });
  const timelineTitle = () => h("h2", { id: "timeline-title", text: "Timeline" });
  box.replaceChildren(title(), ranges, statusLine("Loading…"));
  timeline.replaceChildren(timelineTitle());
  const events = await auditEvents(
    {
      principal: sub,
      type: "access.decision",
      since: since.toISOString(),
      until: until.toISOString(),
    },
    5000,
  ).catch((err) => err);
  if (events instanceof Error) {
    box.replaceChildren(title(), ranges, errorBox(events));
    return;
  }
  const newest = [...events].reverse().slice(0, TABLE_ROWS);
  const chart = activityChart(
    hourly(events, since, until),
    `Footage requests by ${sub} per hour`,
    box.clientWidth,
  );
  box.replaceChildren(title(), ranges, chart);
  fill(
    timeline,
    timelineTitle(),
    events.length
      ? eventTable(`Footage requests by ${sub}, newest first`, newest, true)
      : h("p", { class: "empty", text: "No footage requests in this period." }),
    events.length > TABLE_ROWS
      ? h("p", { class: "muted", text: `Showing the newest ${TABLE_ROWS} of ${events.length}.` })
      : null,
    h("p", {}, searchLink({ principal: sub }, "Search every audit event of this principal →")),
  );
}
