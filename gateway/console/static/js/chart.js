// An hourly activity chart drawn as SVG by the page: bars of views per hour (allowed, with
// denied stacked on top) and a line of distinct customers per hour. A sweep across many
// customers shows as the line jumping up to meet the bars.
//
// Built with createElementNS and presentation attributes only (the CSP forbids inline style);
// colours come from the stylesheet through class names.

import { h, s, shortDay, shortTime } from "./dom.js";

const HOUR = 3600e3;
const WIDE = 720; // viewBox width on a laptop; a phone gets a narrower one, so text stays legible
const NARROW = 380;
const H = 260;
const M = { top: 16, right: 12, bottom: 40, left: 40 };

/** Bucket access decisions by hour between `since` and `until` (Dates). */
export function hourly(events, since, until) {
  const first = Math.floor(since.getTime() / HOUR);
  const last = Math.floor(until.getTime() / HOUR);
  const buckets = [];
  for (let hour = first; hour <= last; hour += 1) {
    buckets.push({ start: new Date(hour * HOUR), allowed: 0, denied: 0, customers: new Set() });
  }
  for (const event of events) {
    const index = Math.floor(new Date(event.ts).getTime() / HOUR) - first;
    const bucket = buckets[index];
    if (!bucket) continue;
    if (event.decision === "deny") bucket.denied += 1;
    else bucket.allowed += 1;
    if (event.customer_id) bucket.customers.add(event.customer_id);
  }
  return buckets;
}

function niceMax(value) {
  if (value <= 4) return 4;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * power >= value / 4) * power;
  return Math.ceil(value / step) * step;
}

/** The chart, with a caption summarising it for people who cannot see it. */
export function activityChart(buckets, title, availableWidth = WIDE) {
  const W = availableWidth < 560 ? NARROW : WIDE;
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const peakViews = Math.max(0, ...buckets.map((b) => b.allowed + b.denied));
  const peakCustomers = Math.max(0, ...buckets.map((b) => b.customers.size));
  const max = niceMax(Math.max(peakViews, peakCustomers));
  const y = (v) => M.top + plotH - (v / max) * plotH;
  const slot = plotW / buckets.length;
  const x = (i) => M.left + i * slot;

  const titleId = `chart-title-${Math.random().toString(36).slice(2)}`;
  const descId = `${titleId}-desc`;
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-labelledby": `${titleId} ${descId}`,
  });
  svg.append(
    s("title", { id: titleId, text: title }),
    s("desc", { id: descId, text: summary(buckets) }),
  );
  svg.append(grid(max, y, plotW), xAxis(buckets, x, slot, plotH, Math.floor(plotW / 80)));

  const bars = s("g", { class: "bars" });
  buckets.forEach((b, i) => {
    const width = Math.max(1, slot * 0.7);
    const left = x(i) + (slot - width) / 2;
    const label = `${hourLabel(b.start)}: ${b.allowed + b.denied} views (${b.denied} denied), ${b.customers.size} distinct customers`;
    const group = s("g", {}, s("title", { text: label }));
    if (b.allowed)
      group.append(
        s("rect", {
          class: "bar-allowed",
          x: left,
          width,
          y: y(b.allowed),
          height: y(0) - y(b.allowed),
        }),
      );
    if (b.denied) {
      const top = y(b.allowed + b.denied);
      group.append(
        s("rect", { class: "bar-denied", x: left, width, y: top, height: y(b.allowed) - top }),
      );
    }
    // A transparent full-height target so the hover title works on empty hours too.
    group.append(s("rect", { class: "hit", x: x(i), width: slot, y: M.top, height: plotH }));
    bars.append(group);
  });
  svg.append(bars);

  const points = buckets.map((b, i) => [x(i) + slot / 2, y(b.customers.size)]);
  const d = points
    .map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`)
    .join(" ");
  svg.append(s("path", { class: "line-customers", d }));
  const dots = s("g", { class: "dots" });
  buckets.forEach((b, i) => {
    if (b.customers.size)
      dots.append(
        s("circle", { class: "dot-customers", cx: points[i][0], cy: points[i][1], r: 3.5 }),
      );
  });
  svg.append(dots);

  return h(
    "figure",
    { class: "chart-figure" },
    svg,
    h(
      "figcaption",
      {},
      h(
        "ul",
        { class: "legend" },
        legend("key-allowed", "allowed"),
        legend("key-denied", "denied"),
        legend("key-customers", "distinct customers"),
      ),
      h("p", { class: "muted", text: summary(buckets) }),
    ),
  );
}

function legend(cls, text) {
  return h("li", {}, h("span", { class: `key ${cls}`, "aria-hidden": "true" }), text);
}

function grid(max, y, plotW) {
  const g = s("g", { class: "grid" });
  for (let i = 0; i <= 4; i += 1) {
    const value = (max / 4) * i;
    const py = y(value);
    g.append(
      s("line", { x1: M.left, x2: M.left + plotW, y1: py, y2: py }),
      s("text", {
        x: M.left - 6,
        y: py + 4,
        "text-anchor": "end",
        text: Number.isInteger(value) ? value : value.toFixed(1),
      }),
    );
  }
  return g;
}

function xAxis(buckets, x, slot, plotH, labels) {
  const g = s("g", { class: "axis" });
  const every = Math.max(1, Math.ceil(buckets.length / labels));
  buckets.forEach((b, i) => {
    if (i % every !== 0) return;
    const px = x(i) + slot / 2;
    const newDay = i === 0 || b.start.getHours() < every;
    g.append(
      s("line", { x1: px, x2: px, y1: M.top + plotH, y2: M.top + plotH + 4 }),
      s("text", {
        x: px,
        y: M.top + plotH + 16,
        "text-anchor": "middle",
        text: shortTime(b.start),
      }),
    );
    if (newDay)
      g.append(
        s("text", {
          x: px,
          y: M.top + plotH + 30,
          "text-anchor": "middle",
          class: "day",
          text: shortDay(b.start),
        }),
      );
  });
  return g;
}

function hourLabel(start) {
  return `${shortDay(start)} ${shortTime(start)}–${shortTime(new Date(start.getTime() + HOUR))}`;
}

function summary(buckets) {
  const total = buckets.reduce((n, b) => n + b.allowed + b.denied, 0);
  if (!total) return "No footage requests in this period.";
  const customers = new Set(buckets.flatMap((b) => [...b.customers]));
  const peak = buckets.reduce(
    (best, b) => (b.customers.size > best.customers.size ? b : best),
    buckets[0],
  );
  const busiest = buckets.reduce(
    (best, b) => (b.allowed + b.denied > best.allowed + best.denied ? b : best),
    buckets[0],
  );
  return (
    `${total} footage request${total === 1 ? "" : "s"} across ${customers.size} ` +
    `customer${customers.size === 1 ? "" : "s"}. ` +
    `Busiest hour ${hourLabel(busiest.start)} with ${busiest.allowed + busiest.denied} requests; ` +
    `most customers in one hour: ${peak.customers.size} (${hourLabel(peak.start)}).`
  );
}
