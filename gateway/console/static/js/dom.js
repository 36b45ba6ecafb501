// Building the page from data, safely: every string becomes a text node or an attribute
// value, never markup. There is no innerHTML anywhere in the console (and the CSP requires
// Trusted Types, so a stray one would throw instead of parsing).

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * Create an element. `props` holds attributes (set with setAttribute), plus:
 * `text` (textContent), `on` ({event: handler}), `dataset`, and boolean properties
 * `checked`, `disabled`, `selected`, `hidden`, `required`, `value`.
 */
export function h(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

/** Create an SVG element (same props as `h`). */
export function s(tag, props = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

const PROPERTIES = new Set(["checked", "disabled", "selected", "hidden", "required", "value"]);

function build(el, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "on")
      for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (PROPERTIES.has(key)) el[key] = value;
    else if (/^on/i.test(key)) throw new Error(`inline handler ${key} refused`);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Replace an element's children (null/false children are skipped, unlike replaceChildren). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Append children: nodes as they are, strings and numbers as text, arrays flattened. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const LOCAL = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const LOCAL_SHORT = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const LOCAL_DAY = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const LOCAL_DAY_TIME = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
});

/** The viewer's time zone, for the footer. */
export function timeZoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
}

/**
 * A <time>: the viewer's local time as text, the UTC instant on hover (title).
 * `short` drops the date when it is today.
 */
export function when(ts, short = false) {
  if (!ts) return h("span", { class: "muted", text: "—" });
  const date = ts instanceof Date ? ts : new Date(ts);
  if (Number.isNaN(date.getTime())) return h("span", { text: String(ts) });
  const utc = date.toISOString().replace(".000Z", "Z");
  const today = date.toDateString() === new Date().toDateString();
  const text = !short
    ? LOCAL.format(date)
    : today
      ? LOCAL_SHORT.format(date)
      : LOCAL_DAY_TIME.format(date);
  return h("time", { datetime: utc, title: `${utc} (UTC)`, text });
}

export function shortTime(date) {
  return LOCAL_SHORT.format(date);
}

export function shortDay(date) {
  return LOCAL_DAY.format(date);
}

/** Bytes in a unit a person reads. */
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

/** A labelled badge: allowed/denied, active/revoked, high/low… (class from a fixed set). */
export function badge(text, kind) {
  return h("span", { class: `badge badge-${kind}`, text });
}

/** The API's error message, in an alert region. */
export function errorBox(err) {
  return h("p", { class: "error", role: "alert", text: messageOf(err) });
}

export function messageOf(err) {
  return err && err.message ? err.message : String(err);
}

/** A status line that screen readers announce. */
export function statusLine(text) {
  return h("p", { class: "notice", role: "status", text });
}

/** A table: columns are [heading, (row) => cell content]; narrow screens show cards. */
export function table(caption, columns, rows, rowClass) {
  const head = h(
    "tr",
    {},
    columns.map(([name]) => h("th", { scope: "col", text: name })),
  );
  const body = rows.map((row) =>
    h(
      "tr",
      { class: rowClass ? rowClass(row) : null },
      columns.map(([name, cell]) => h("td", { "data-label": name }, h("div", {}, cell(row)))),
    ),
  );
  return h(
    "div",
    { class: "table-wrap" },
    h("table", {}, h("caption", { text: caption }), h("thead", {}, head), h("tbody", {}, body)),
  );
}

/** A labelled form field: <label> + control, joined by id. */
let fieldCounter = 0;
export function field(labelText, control, help) {
  fieldCounter += 1;
  const id = control.id || `f${fieldCounter}`;
  control.id = id;
  const parts = [h("label", { for: id, text: labelText }), control];
  if (help) {
    const helpId = `${id}-help`;
    control.setAttribute("aria-describedby", helpId);
    parts.push(h("small", { id: helpId, class: "muted", text: help }));
  }
  return h("div", { class: "field" }, parts);
}

/** A <select> from [value, label] pairs. */
export function select(name, options, chosen) {
  return h(
    "select",
    { name },
    options.map(([value, label]) =>
      h("option", { value, text: label, selected: value === chosen }),
    ),
  );
}

/** Local datetime-local value ("YYYY-MM-DDTHH:MM") for a Date. */
export function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** A datetime-local value (the viewer's zone) as an RFC 3339 UTC string, or "" when empty. */
export function fromLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

/** Disable a form's controls while a request runs; returns the function that re-enables. */
export function busy(form) {
  const controls = [...form.elements].filter((el) => !el.disabled);
  controls.forEach((el) => (el.disabled = true));
  form.setAttribute("aria-busy", "true");
  return () => {
    controls.forEach((el) => (el.disabled = false));
    form.removeAttribute("aria-busy");
  };
}

/** A link into the console's hash routes (`#/principal/<sub>`, …). */
export function link(route, text) {
  return h("a", { href: `#${route}`, text });
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Any API value as text: times as <time>, objects as "key: value" lines, never markup. */
export function plainValue(value) {
  if (typeof value === "string" && ISO_TIME.test(value)) return when(value);
  if (Array.isArray(value))
    return value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", ");
  if (value && typeof value === "object") {
    return h(
      "ul",
      { class: "plain" },
      Object.entries(value).map(([k, v]) =>
        h("li", {}, `${k.replace(/_/g, " ")}: `, plainValue(v)),
      ),
    );
  }
  return String(value);
}
