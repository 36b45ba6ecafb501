// Analyst: open (or resolved) flags, each with its evidence events and a resolve form.
// `#/flags?status=open|resolved` lists them; `#/flags/<flag_id>` opens one.

import { api, isMissing, path } from "../api.js";
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
import { eventTable, principalLink } from "./events.js";

// What each default rule means (contract §8); an unknown rule is shown by its id.
const RULES = {
  customer_browsing: "Footage of many different customers within an hour",
  bulk_viewing: "Many clips within a few minutes",
  repeated_denials: "Repeated denied requests",
  private_zone_access: "A view of a private camera (bedroom, bathroom, nursery)",
  break_glass: "Emergency (break-glass) access",
  off_hours: "Access outside working hours",
};
const SEVERITY = { high: "bad", medium: "warn", low: "info" };
// Shown on their own (or internal, like window_key); every other field is listed as text.
const SHOWN = new Set([
  "flag_id",
  "rule",
  "severity",
  "principal",
  "created_at",
  "event_ids",
  "status",
  "events",
  "window_key",
]);

export async function render(root, { segments, params, heading }) {
  const flagId = segments[0];
  const status = params.get("status") === "resolved" ? "resolved" : "open";
  if (!flagId) root.append(tabs(status));
  let flags;
  try {
    flags = flagId
      ? await findFlag(flagId)
      : (await api("GET", "/v1/flags", { query: { status } })).flags;
  } catch (err) {
    if (!isMissing(err) || flagId) throw err;
    root.append(
      h("p", {
        class: "notice",
        text: "This gateway does not serve flags yet (no /v1/flags): detection is not enabled.",
      }),
    );
    return;
  }
  if (flagId) {
    if (!flags.length) throw new Error(`No flag ${flagId}.`);
    heading.textContent = `Flag: ${ruleTitle(flags[0].rule)}`;
    root.append(h("p", {}, link("/flags", "← All open flags")));
  }
  if (!flags.length) {
    root.append(
      h("p", {
        class: "empty",
        text: status === "open" ? "No open flags. Nothing needs review." : "No resolved flags yet.",
      }),
    );
    return;
  }
  const list = h("div", { class: "cards" });
  root.append(list);
  for (const flag of flags) list.append(flagCard(flag, Boolean(flagId)));
}

function tabs(status) {
  const tab = (name, text) =>
    h("a", {
      href: `#/flags?status=${name}`,
      class: "tab",
      text,
      "aria-current": status === name ? "page" : null,
    });
  return h(
    "nav",
    { class: "tabs", "aria-label": "Flag status" },
    tab("open", "Open"),
    tab("resolved", "Resolved"),
  );
}

async function findFlag(flagId) {
  for (const status of ["open", "resolved"]) {
    const { flags } = await api("GET", "/v1/flags", { query: { status, limit: 1000 } });
    const found = flags.filter((f) => f.flag_id === flagId);
    if (found.length) return found;
  }
  return [];
}

function ruleTitle(rule) {
  return RULES[rule] ? rule.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase()) : String(rule);
}

function flagCard(flag, open) {
  const ids = Array.isArray(flag.event_ids) ? flag.event_ids : [];
  const titleId = `flag-${flag.flag_id}`;
  const facts = h(
    "dl",
    { class: "facts row" },
    fact("Principal", principalLink(flag.principal)),
    fact("Raised", when(flag.created_at)),
    fact(
      "Status",
      flag.status === "open" ? badge("open", "warn") : badge(String(flag.status), "ok"),
    ),
    fact("Flag id", h("code", { text: flag.flag_id })),
    Object.entries(flag)
      .filter(
        ([key, value]) => !SHOWN.has(key) && value !== null && value !== undefined && value !== "",
      )
      .filter(([, value]) => !(typeof value === "object" && !Object.keys(value).length))
      .map(([key, value]) =>
        key === "detail" ? measured(value) : fact(key.replace(/_/g, " "), plainValue(value)),
      ),
  );
  const card = h(
    "article",
    {
      class: `card flag severity-${SEVERITY[flag.severity] || "info"}`,
      "aria-labelledby": titleId,
    },
    h(
      "header",
      { class: "card-head" },
      badge(String(flag.severity || "unrated"), SEVERITY[flag.severity] || "info"),
      h(
        "h2",
        { id: titleId },
        link(`/flags/${encodeURIComponent(flag.flag_id)}`, ruleTitle(flag.rule)),
      ),
    ),
    h("p", { class: "muted", text: RULES[flag.rule] || `Rule ${flag.rule}` }),
    facts,
    evidence(flag, ids, open),
  );
  if (flag.status === "open") card.append(resolveForm(flag, card));
  return card;
}

function isDecision(event) {
  return event.type === "access.decision";
}

// A window rule's detail reads as a sentence; anything else is listed field by field.
function measured(detail) {
  const { count, threshold, window_minutes: minutes } = detail;
  if ([count, threshold, minutes].some((v) => typeof v !== "number")) {
    return fact("Detail", plainValue(detail));
  }
  return fact("Measured", `${count} within ${minutes} minutes (flags at ${threshold})`);
}

// One <div> per name-value pair (allowed in a <dl>), so the pairs can sit side by side.
function fact(name, value) {
  return h("div", {}, h("dt", { text: name }), h("dd", {}, value));
}

function evidence(flag, ids, open) {
  const count = Array.isArray(flag.events) ? flag.events.length : ids.length;
  const body = h("div", { class: "evidence-body" });
  const details = h(
    "details",
    { class: "evidence" },
    h("summary", { text: `Evidence: ${count} event${count === 1 ? "" : "s"}` }),
    body,
  );
  let loaded = false;
  details.addEventListener("toggle", async () => {
    if (!details.open || loaded) return;
    loaded = true;
    body.replaceChildren(statusLine("Loading the evidence…"));
    try {
      const events = await evidenceEvents(flag, ids);
      const missing = count - events.length;
      fill(
        body,
        eventTable(`Evidence for flag ${flag.flag_id}`, events, events.every(isDecision)),
        missing > 0
          ? h("p", {
              class: "muted",
              text: `${missing} evidence event(s) could not be found in the audit log near the flag's time.`,
            })
          : null,
      );
    } catch (err) {
      loaded = false;
      body.replaceChildren(errorBox(err));
    }
  });
  if (open) details.open = true;
  return details;
}

// The flag names its evidence by event id; the audit search filters by principal and time,
// so look in the day before the flag was raised and keep the events it names.
async function evidenceEvents(flag, ids) {
  if (Array.isArray(flag.events)) return flag.events;
  const wanted = new Set(ids);
  if (!wanted.size) return [];
  const raised = new Date(flag.created_at).getTime();
  const query = {
    principal: flag.principal,
    since: new Date(raised - 24 * 3600e3).toISOString(),
    until: new Date(raised + 5 * 60e3).toISOString(),
    limit: 1000,
  };
  const found = [];
  let after;
  for (let page = 0; page < 20 && found.length < wanted.size; page += 1) {
    const batch = await api("GET", "/v1/audit/events", { query: { ...query, after_seq: after } });
    found.push(...batch.events.filter((e) => wanted.has(e.event_id)));
    if (batch.next_after_seq === null || batch.next_after_seq === undefined) break;
    after = batch.next_after_seq;
  }
  return found;
}

function resolveForm(flag, card) {
  const text = h("textarea", { name: "resolution", rows: "2", required: true, maxlength: "1000" });
  const result = h("div", { class: "form-result" });
  const form = h(
    "form",
    { class: "resolve" },
    field(
      "Resolution",
      text,
      "What you found and did: it is kept with the flag and in the audit log.",
    ),
    h("button", { type: "submit", text: "Resolve flag" }),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const done = busy(form);
    try {
      const resolved = await api("POST", `${path("/v1/flags", flag.flag_id)}/resolve`, {
        body: { resolution: text.value.trim() },
      });
      const updated = (resolved && resolved.flag_id ? resolved : resolved && resolved.flag) || {
        ...flag,
        status: "resolved",
        resolution: text.value.trim(),
      };
      const next = flagCard(updated, false);
      card.replaceWith(next);
      next.append(statusLine("Flag resolved."));
    } catch (err) {
      done();
      result.replaceChildren(errorBox(err));
    }
  });
  return form;
}
