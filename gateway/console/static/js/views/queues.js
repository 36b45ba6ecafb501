// Queues (contract §13). Security analysts: every access request (filter by state) and the
// break-glass reviews, each closed with a note. Legal approvers: the staff-approved requests
// waiting for their sign-off, approved or denied (never their own: the API refuses that).

import { api, path } from "../api.js";
import { badge, busy, errorBox, field, h, select, statusLine, table, when } from "../dom.js";
import { isAnalyst } from "../session.js";
import { cameraList, duration, footageWindow, REQUEST_STATE } from "./ask.js";

const STATES = ["", "pending", "approved", "denied", "expired", "cancelled"];

/** True for the roles that have a queue here. */
export function hasQueue(s) {
  return isAnalyst(s) || s.claims.roles.includes("legal_approver");
}

export async function render(root, { session, params, navigate }) {
  const requests = h("section", { class: "card", "aria-labelledby": "queue-title" });
  root.append(requests);
  if (isAnalyst(session)) {
    const reviews = h("section", { class: "card", "aria-labelledby": "reviews-title" });
    root.append(reviews);
    await renderAll(requests, params.get("state") || "", navigate);
    await renderReviews(reviews, session.claims.sub);
  } else {
    await renderApprovals(requests, session.claims.sub);
  }
}

async function renderAll(box, state, navigate) {
  const choice = select(
    "state",
    STATES.map((s) => [s, s || "any state"]),
    state,
  );
  choice.addEventListener("change", () =>
    navigate(choice.value ? `/queues?state=${choice.value}` : "/queues"),
  );
  const { access_requests: found } = await api("GET", "/v1/access-requests", {
    query: { state },
  });
  const columns = [
    ["State", (r) => badge(r.state, REQUEST_STATE[r.state] || "info")],
    ["Requester", (r) => r.requester],
    ["Customer", (r) => h("code", { text: r.customer_id })],
    ["Purpose", (r) => r.purpose],
    ["Why", (r) => h("span", { class: "justification", text: r.reason })],
    ["Ticket", (r) => h("code", { text: r.ticket })],
    ["Cameras", (r) => cameraList(r.cameras)],
    ["Approver", (r) => (r.approver === "customer" ? "customer" : r.approver_roles.join(", "))],
    ["Asked", (r) => when(r.created_at, true)],
  ];
  box.replaceChildren(
    h("h2", { id: "queue-title", text: "Access requests" }),
    h("form", { class: "filters", "aria-label": "Filter requests" }, field("State", choice)),
    found.length
      ? table("Every access request, newest first", columns, found)
      : h("p", { class: "empty", text: "No access requests." }),
  );
}

async function renderReviews(box, sub) {
  const title = h("h2", { id: "reviews-title", text: "Break-glass reviews" });
  let found;
  try {
    ({ reviews: found } = await api("GET", "/v1/reviews", { query: { state: "open" } }));
  } catch (err) {
    box.replaceChildren(title, errorBox(err));
    return;
  }
  const columns = [
    ["Subject", (r) => h("strong", { text: r.subject })],
    ["Customer", (r) => h("code", { text: r.customer_id })],
    ["Opened", (r) => when(r.opened_at, true)],
    ["Due", (r) => h("span", {}, when(r.due_at, true), r.overdue ? [" ", badge("overdue", "bad")] : null)],
    ["Uses", (r) => String(r.uses)],
    ["", (r) => (r.subject === sub ? "not yours to close" : closeForm(r, box, sub))],
  ];
  box.replaceChildren(
    title,
    found.length
      ? table("Open break-glass reviews", columns, found)
      : h("p", { class: "empty", text: "No break-glass review is open." }),
  );
}

function closeForm(review, box, sub) {
  const note = h("input", { type: "text", name: "note", required: true, maxlength: "2000" });
  const form = h(
    "form",
    { class: "inline-form", "aria-label": `Close the review of ${review.subject}` },
    field("Note", note),
    h("button", { type: "submit", text: "Close review" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const done = busy(form);
    try {
      await api("POST", path("/v1/reviews", review.review_id, "close"), {
        body: { note: note.value.trim() },
      });
      await renderReviews(box, sub);
      box.append(statusLine(`Closed the review of ${review.subject}.`));
    } catch (err) {
      done();
      form.append(errorBox(err));
    }
  });
  return form;
}

async function renderApprovals(box, sub) {
  const title = h("h2", { id: "queue-title", text: "Waiting for your approval" });
  const { access_requests: found } = await api("GET", "/v1/access-requests", {
    query: { state: "pending" },
  });
  const waiting = found.filter((r) => r.approver === "staff" && r.requester !== sub);
  const columns = [
    ["Requester", (r) => h("strong", { text: r.requester })],
    ["Customer", (r) => h("code", { text: r.customer_id })],
    ["Purpose", (r) => r.purpose],
    ["Why", (r) => h("span", { class: "justification", text: r.reason })],
    ["Ticket", (r) => h("code", { text: r.ticket })],
    ["Cameras", (r) => cameraList(r.cameras)],
    ["Footage", footageWindow],
    ["For", (r) => duration(r.duration_seconds)],
    ["Approvals", (r) => `${r.approvals.length} of ${r.approvals_needed}`],
    ["", (r) => answerButtons(r, box, sub)],
  ];
  box.replaceChildren(
    title,
    waiting.length
      ? table("Requests waiting for a staff approval", columns, waiting)
      : h("p", { class: "empty", text: "Nothing waits for your approval." }),
  );
}

function answerButtons(r, box, sub) {
  const already = r.approvals.includes(sub);
  const approve = h("button", {
    type: "button",
    text: already ? "Approved by you" : "Approve",
    disabled: already,
    "aria-label": `Approve ${r.requester}'s request (ticket ${r.ticket})`,
  });
  const deny = h("button", {
    type: "button",
    class: "danger",
    text: "Deny",
    "aria-label": `Deny ${r.requester}'s request (ticket ${r.ticket})`,
  });
  const act = (verb) => async () => {
    approve.disabled = deny.disabled = true;
    try {
      await api("POST", path("/v1/access-requests", r.request_id, verb));
      await renderApprovals(box, sub);
      box.append(statusLine(`${verb === "approve" ? "Approved" : "Denied"}: ticket ${r.ticket}.`));
    } catch (err) {
      approve.disabled = already;
      deny.disabled = false;
      box.append(errorBox(err));
    }
  };
  approve.addEventListener("click", act("approve"));
  deny.addEventListener("click", act("deny"));
  return h("span", { class: "actions" }, approve, " ", deny);
}
