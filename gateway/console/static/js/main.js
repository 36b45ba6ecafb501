// The console's shell: sign-in, the role's navigation, and a small hash router.
//
// Routes live in the fragment (`#/flags`, `#/principal/<sub>`, `#/audit?principal=…`), so
// nothing about what is being looked at reaches a server log, and Back/Forward just work.

import * as session from "./session.js";
import * as signin from "./signin.js";
import { fill, h, timeZoneName, when } from "./dom.js";
import * as flags from "./views/flags.js";
import * as principal from "./views/principal.js";
import * as audit from "./views/audit.js";
import * as chain from "./views/chain.js";
import * as access from "./views/access.js";
import * as grants from "./views/grants.js";
import * as cameras from "./views/cameras.js";
import * as desk from "./views/desk.js";
import * as inbox from "./views/inbox.js";
import * as queues from "./views/queues.js";
import { stopAll } from "./player.js";

const analyst = (s) => session.isAnalyst(s);
const customer = (s) => session.isCustomer(s);
const staff = (s) => !session.isCustomer(s);

const ROUTES = [
  { path: "flags", title: "Flags", who: analyst, view: flags },
  { path: "principal", title: "Principals", who: analyst, view: principal },
  { path: "audit", title: "Audit search", who: analyst, view: audit },
  { path: "chain", title: "Chain integrity", who: analyst, view: chain },
  {
    path: "access",
    title: "Who looked at my footage",
    nav: "Who looked",
    who: customer,
    view: access,
  },
  {
    path: "grants",
    title: "Grants",
    who: (s) => customer(s) || (staff(s) && !analyst(s)),
    view: grants,
  },
  { path: "cameras", title: "My cameras", nav: "Cameras", who: customer, view: cameras },
  { path: "inbox", title: "Access requests", nav: "Inbox", who: customer, view: inbox },
  { path: "queues", title: "Access requests", nav: "Requests", who: queues.hasQueue, view: queues },
  {
    path: "desk",
    title: "Staff desk",
    nav: "Desk",
    who: (s) => staff(s) && desk.canWatch(s),
    view: desk,
  },
];

const $ = (id) => document.getElementById(id);

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [pathPart, queryPart = ""] = raw.split("?", 2);
  const segments = pathPart.split("/").filter(Boolean).map(safeDecode);
  return { segments, params: new URLSearchParams(queryPart) };
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function defaultRoute(s) {
  return ROUTES.find((r) => r.who(s));
}

/** Go to a console route (`/audit?principal=x`). */
export function navigate(route) {
  if (location.hash === `#${route}`) render(false);
  else location.hash = route;
}

function renderNav(s, active) {
  const nav = $("nav");
  const links = ROUTES.filter((r) => r.who(s)).map((r) =>
    h("a", {
      href: `#/${r.path}`,
      text: r.nav || r.title,
      "aria-current": r === active ? "page" : null,
    }),
  );
  nav.replaceChildren(
    h(
      "ul",
      {},
      links.map((a) => h("li", {}, a)),
    ),
  );
  nav.hidden = false;
  if (customer(s)) inbox.updateBadge(); // the count of requests waiting for an answer
}

function renderWho(s) {
  const { sub, roles, exp } = s.claims;
  $("who-name").replaceChildren(
    h("strong", { text: sub }),
    " ",
    h("span", {
      class: "muted roles",
      text: roles.length ? `(${roles.join(", ")})` : "(no roles)",
    }),
  );
  $("who-expiry").replaceChildren("until ", when(new Date(exp * 1000), true));
  $("who").hidden = false;
}

// A token handed over in a link while signed in is not used until the person says so: a link
// (from anyone) must not silently swap whose console this is (docs/console.md, "Signing in").
function switchPrompt(s, offer) {
  const who = (c) => `${c.sub} (${c.roles.length ? c.roles.join(", ") : "no roles"})`;
  const box = h("section", {
    id: "switch-session",
    class: "card notice",
    "aria-labelledby": "switch-title",
  });
  if (offer.error) {
    return fill(
      box,
      h("h2", { id: "switch-title", tabindex: "-1", text: "A link's token was not used" }),
      h("p", { class: "error", role: "alert", text: offer.error }),
      h("p", { text: `You are still signed in as ${who(s.claims)}.` }),
      h("button", { type: "button", text: "Dismiss", on: { click: session.declineSwitch } }),
    );
  }
  return fill(
    box,
    h("h2", { id: "switch-title", tabindex: "-1", text: "Switch to another session?" }),
    h("p", {
      role: "alert",
      text: `A link handed this console a token for ${who(offer.claims)}. You are signed in as ${who(s.claims)}. Switch only if you opened that link yourself to sign in as someone else.`,
    }),
    h(
      "div",
      { class: "actions" },
      h("button", {
        type: "button",
        text: `Switch to ${offer.claims.sub}`,
        on: { click: session.acceptSwitch },
      }),
      " ",
      h("button", {
        type: "button",
        class: "secondary",
        text: `Stay signed in as ${s.claims.sub}`,
        on: { click: session.declineSwitch },
      }),
    ),
  );
}

function showSignedOut(reason) {
  $("nav").hidden = true;
  $("who").hidden = true;
  $("view").hidden = true;
  $("view").replaceChildren();
  $("signed-out").hidden = false;
  $("signin-notice").textContent = reason || "";
  $("signin-error").textContent = "";
  $("token-input").value = "";
  document.title = "Sign in · Footage gateway";
  firstRender = false; // signing in from here moves focus to the new view's heading
}

let firstRender = true;

async function render(moveFocus = true) {
  const s = session.session();
  if (!s) return;
  stopAll(); // a playback ends with the view that showed it
  const { segments, params } = parseHash();
  const fallback = defaultRoute(s);
  let route = ROUTES.find((r) => r.path === segments[0]);
  if (!route && fallback) {
    history.replaceState(null, "", `#/${fallback.path}`);
    route = fallback;
  }
  $("signed-out").hidden = true;
  renderWho(s);
  renderNav(s, route);
  const view = $("view");
  view.hidden = false;
  const heading = h("h1", { tabindex: "-1", text: route ? route.title : "Nothing to show" });
  const body = h("div", { class: "view-body" });
  const offer = session.pendingSwitch();
  const prompt = offer ? switchPrompt(s, offer) : null;
  view.replaceChildren(...[prompt, heading, body].filter(Boolean));
  document.title = `${heading.textContent} · Footage gateway`;
  if (prompt) prompt.querySelector("h2").focus();
  else if (moveFocus && !firstRender) heading.focus();
  firstRender = false;
  if (!route) {
    body.append(h("p", { text: "Your roles have no views in this console." }));
    return;
  }
  if (!route.who(s)) {
    body.append(
      h("p", { class: "error", role: "alert", text: "Your roles do not include this view." }),
    );
    return;
  }
  try {
    await route.view.render(body, {
      segments: segments.slice(1),
      params,
      heading,
      navigate,
      session: s,
    });
  } catch (err) {
    if (session.session())
      body.append(h("p", { class: "error", role: "alert", text: err.message }));
  }
  if (heading.isConnected) document.title = `${heading.textContent} · Footage gateway`;
}

async function start() {
  $("tz-note").textContent = `Times are shown in ${timeZoneName()}; hover a time for UTC.`;
  session.onChange((s, reason) => {
    // Back through sign-in, to this same route (or, if that just happened, the sign-in page).
    if (reason === "expired") {
      if (!signin.again()) session.signOut("Your session ended. Sign in again.");
    } else if (s) render();
    else showSignedOut(reason);
  });
  $("sign-out").addEventListener("click", () => {
    const s = session.session();
    session.signOut("You signed out.");
    if (s && s.cookie) signin.end(s.csrf); // the gateway's session, then the provider's
  });
  $("provider-button").addEventListener("click", () => signin.begin());
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      session.signIn($("token-input").value);
    } catch (err) {
      $("signin-error").textContent = err.message;
      $("token-input").focus();
    }
  });
  window.addEventListener("hashchange", () => {
    if (!session.acceptHandedToken()) render(true);
  });
  // Timers sleep with the machine: look at the expiry again whenever the tab comes back.
  document.addEventListener("visibilitychange", () => session.checkExpiry());
  window.addEventListener("focus", () => session.checkExpiry());
  // Another tab cannot share this tab's sessionStorage; nothing to sync.
  const how = await signin.config();
  session.allowHandover(how.token_handover);
  $("provider-signin").hidden = !how.provider;
  $("signin-form").hidden = !how.paste;
  const held = how.provider ? await signin.current().catch(() => null) : null;
  if (held) {
    if (location.hash.startsWith("#token=")) session.acceptHandedToken(); // refused, said so
    session.signInWithCookie(held);
    return;
  }
  const notice = session.restore();
  if (!session.session()) showSignedOut(notice);
}

start();
