// The session: either a provider sign-in held by the gateway (an HttpOnly cookie the page
// cannot read; `cookie: true`, no token here at all), or a bearer token taken from a paste or,
// in dev mode only, from the URL fragment, kept in sessionStorage only (never a cookie, never
// a query string), and forgotten when it expires or the API says 401.
//
// The claims are decoded here for display and navigation only: the signature is not (and
// cannot be) checked in the page. The gateway checks it on every request and enforces roles.

const KEY = "footgw.console.token";
const ANALYST_ROLES = ["security_analyst", "admin"];
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (about 24.8 days)

let current = null; // {token, claims}, or {cookie: true, csrf, claims}
let handoverAllowed = true; // `#token=` links: dev mode only (set from /auth/config)
// A token handed over in the fragment while a session is open: {token, claims}, or {error}
// when it cannot be used. Held in memory only, until the person chooses (docs/console.md):
// a link must never silently change whose console this is.
let offer = null;
let expiryTimer = null;
const listeners = new Set();

/** Call `fn(session, reason)` whenever the session starts or ends. */
export function onChange(fn) {
  listeners.add(fn);
}

function emit(reason) {
  for (const fn of listeners) fn(current, reason);
}

/** Decode a JWT's payload (no verification: display and navigation only). */
export function decodeClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("This is not a JWT: it needs three dot-separated parts.");
  let claims;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const raw = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    claims = JSON.parse(new TextDecoder().decode(raw));
  } catch {
    throw new Error("The token's claims could not be read.");
  }
  if (!claims || typeof claims !== "object")
    throw new Error("The token's claims could not be read.");
  if (typeof claims.exp !== "number") throw new Error("The token has no expiry (exp).");
  if (typeof claims.sub !== "string") throw new Error("The token names no principal (sub).");
  return {
    sub: claims.sub,
    roles: Array.isArray(claims.roles) ? claims.roles.filter((r) => typeof r === "string") : [],
    customerId: typeof claims.customer_id === "string" ? claims.customer_id : null,
    exp: claims.exp,
  };
}

function expired(claims) {
  return claims.exp * 1000 <= Date.now();
}

function clean(token) {
  return token.trim().replace(/^Bearer\s+/i, "");
}

/** The claims of a token that can start a session; throws with a readable message if not. */
function usable(token) {
  const claims = decodeClaims(token);
  if (expired(claims)) throw new Error("This token has expired: ask for a new one.");
  return claims;
}

/** Start a session with `token`; throws with a readable message if it cannot be used. */
export function signIn(token) {
  const trimmed = clean(token);
  const claims = usable(trimmed);
  sessionStorage.setItem(KEY, trimmed);
  current = { token: trimmed, claims };
  offer = null;
  scheduleExpiry();
  emit("signed-in");
}

/** Start a provider session from /auth/session's answer (the cookie stays HttpOnly). */
export function signInWithCookie(info) {
  sessionStorage.removeItem(KEY);
  const claims = {
    sub: info.sub,
    roles: info.roles,
    customerId: info.customer_id,
    exp: info.expires_at,
  };
  current = { cookie: true, csrf: info.csrf_token, token: null, claims };
  offer = null;
  scheduleExpiry();
  emit("signed-in");
}

/** Whether `#token=` links are taken here (dev mode), from /auth/config. */
export function allowHandover(allowed) {
  handoverAllowed = Boolean(allowed);
}

/** End the session; `reason` is shown on the sign-in page. */
export function signOut(reason = "You signed out.") {
  sessionStorage.removeItem(KEY);
  current = null;
  offer = null;
  clearTimeout(expiryTimer);
  emit(reason);
}

/** The gateway says a provider session is over (expired or ended elsewhere). */
export function sessionEnded() {
  if (current && current.cookie) emit("expired");
}

/** A token handed over while signed in, waiting for the person's answer (or null). */
export function pendingSwitch() {
  return offer;
}

/** The person chose the handed-over token: end this session and start that one. */
export function acceptSwitch() {
  if (!offer || !offer.token) return;
  try {
    usable(offer.token);
    showView(offer.next); // the view the link asked for, or the new session's default
    signIn(offer.token);
  } catch (err) {
    offer = { error: err.message }; // it expired while the question was open
    emit("switch-refused");
  }
}

/** The person kept their session: forget the handed-over token. */
export function declineSwitch() {
  offer = null;
  emit("switch-declined");
}

// A token from the fragment: with no session it signs in (throws if unusable); with one, it is
// only offered, and the open session stays whatever the token is.
function receive(handed) {
  if (!current) {
    showView(handed.next);
    signIn(handed.token);
    return;
  }
  const trimmed = clean(handed.token);
  if (trimmed === current.token) return;
  try {
    offer = { token: trimmed, claims: usable(trimmed), next: handed.next };
  } catch (err) {
    offer = { error: err.message }; // the open session stays: a bad link cannot end it either
  }
  emit("switch-offered");
}

function scheduleExpiry() {
  clearTimeout(expiryTimer);
  const ms = current.claims.exp * 1000 - Date.now();
  expiryTimer = setTimeout(checkExpiry, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
}

/** Sign out if the token has expired (timers sleep with the laptop, so check on wake too). */
export function checkExpiry() {
  if (!current) return;
  if (!expired(current.claims)) scheduleExpiry();
  else if (current.cookie) emit("expired"); // main.js sends the person back through sign-in
  else signOut("Your session expired. Sign in again with a new token.");
}

/**
 * Restore the tab's session, then take a token handed over in the URL fragment: it signs in
 * when there is no session, and is only offered when there is one. Returns a notice for the
 * sign-in page, or null.
 */
export function restore() {
  const notice = dropQueryToken();
  let handed;
  try {
    handed = takeFragmentToken();
  } catch (err) {
    return err.message;
  }
  const stored = sessionStorage.getItem(KEY);
  let problem = null;
  if (stored) {
    try {
      signIn(stored);
    } catch (err) {
      sessionStorage.removeItem(KEY);
      problem = err.message;
    }
  }
  if (handed === null) return current ? null : (problem ?? notice);
  try {
    receive(handed);
    return null;
  } catch (err) {
    return err.message;
  }
}

/**
 * A token handed over while the console is already open (a same-document navigation to
 * `#token=…`): with no session, take it (or say why not); with one, offer it.
 */
export function acceptHandedToken() {
  let handed;
  try {
    handed = takeFragmentToken();
  } catch (err) {
    // Refused (not dev mode): an open session stays, and says why the link did nothing.
    if (current) {
      offer = { error: err.message };
      emit("switch-offered");
    } else signOut(err.message);
    return true;
  }
  if (handed === null) return false;
  try {
    receive(handed);
  } catch (err) {
    signOut(err.message);
  }
  return true;
}

// `#token=<jwt>` (optionally `&view=/flags`): read it, then remove it from the address bar
// and from history, so it is neither bookmarked, shared by copy-paste, nor kept in history.
// Returns {token, next}: `next` is the fragment to show once that token's session starts.
function takeFragmentToken() {
  if (!location.hash.startsWith("#token=")) return null;
  if (!handoverAllowed) {
    history.replaceState(null, "", location.pathname + location.search);
    throw new Error(
      "A link carrying a token is refused here: sign in instead (such links work in dev mode only).",
    );
  }
  const params = new URLSearchParams(location.hash.slice(1));
  const view = params.get("view");
  const next = view && view.startsWith("/") ? `#${view}` : "";
  history.replaceState(null, "", location.pathname + location.search);
  return { token: params.get("token") ?? "", next };
}

function showView(next) {
  history.replaceState(null, "", location.pathname + location.search + next);
}

// A token in a query string has likely been logged on the way here: refuse it.
function dropQueryToken() {
  const params = new URLSearchParams(location.search);
  if (!params.has("token") && !params.has("access_token")) return null;
  history.replaceState(null, "", location.pathname + location.hash);
  return "A token in the query string was ignored: query strings end up in logs. Paste it instead.";
}

export function token() {
  if (current && expired(current.claims)) checkExpiry();
  return current ? current.token : null;
}

export function session() {
  return current;
}

export function isAnalyst(s = current) {
  return Boolean(s && s.claims.roles.some((r) => ANALYST_ROLES.includes(r)));
}

export function isCustomer(s = current) {
  return Boolean(s && s.claims.roles.includes("customer") && s.claims.customerId);
}
