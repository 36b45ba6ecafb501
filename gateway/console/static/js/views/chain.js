// Analyst: is the hash chain intact, up to which event, and what was the last signed checkpoint.

import { api } from "../api.js";
import { badge, busy, errorBox, h, statusLine, when } from "../dom.js";

export async function render(root) {
  const result = h("section", { class: "card", "aria-live": "polite" });
  const again = h("button", { type: "button", text: "Verify again" });
  const form = h("form", { class: "inline-form" }, again);
  root.append(
    h("p", {
      class: "muted",
      text: "Walks the whole audit log: every hash, every link, and the last signed checkpoint.",
    }),
    result,
    form,
  );
  const run = async () => {
    const done = busy(form);
    result.replaceChildren(statusLine("Verifying the chain…"));
    try {
      show(result, await api("GET", "/v1/audit/verify"));
    } catch (err) {
      result.replaceChildren(errorBox(err));
    } finally {
      done();
    }
  };
  again.addEventListener("click", run);
  await run();
}

function show(box, v) {
  const ok = v.ok === true;
  box.replaceChildren(
    h(
      "h2",
      {},
      ok ? badge("intact", "ok") : badge("broken", "bad"),
      " ",
      ok ? "The chain verifies." : "The chain does not verify.",
    ),
    h(
      "dl",
      { class: "facts" },
      fact("Events checked", String(v.events ?? "—")),
      fact("Head hash", h("code", { class: "hash", text: v.head || "—" })),
      ok ? null : fact("First bad seq", String(v.first_bad_seq ?? "—")),
      v.problem ? fact("Problem", v.problem) : null,
      fact("Last checkpoint", checkpoint(v.checkpoint)),
      fact("Checked at", when(new Date())),
    ),
  );
}

function fact(name, value) {
  return [h("dt", { text: name }), h("dd", {}, value)];
}

function checkpoint(cp) {
  if (!cp) return h("span", { class: "muted", text: "No signed checkpoint yet." });
  const parts = [];
  if (cp.seq !== undefined) parts.push(`seq ${cp.seq}`);
  const hash = cp.head_hash || cp.hash;
  const at = cp.signed_at || cp.created_at || cp.ts;
  return h(
    "span",
    {},
    parts.join(" "),
    hash ? [" · ", h("code", { class: "hash", text: hash })] : null,
    at ? [" · signed ", when(at)] : null,
    cp.key_id || cp.kid ? ` · key ${cp.key_id || cp.kid}` : null,
  );
}
