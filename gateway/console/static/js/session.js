// The bearer token: taken from a paste or from the URL fragment, kept in sessionStorage only
// (never a cookie, never a query string), and forgotten when it expires or the API says 401.
//
// The claims are decoded here for display and navigation only: the signature is not (and
// cannot be) checked in the page. The gateway checks it on every request and enforces roles.

const KEY = "footgw.console.token";
const ANALYST_ROLES = ["security_analyst", "admin"];
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (about 24.8 days)

let current = null; // {token, claims}
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

/** Start a session with `token`; throws with a readable message if it cannot be used. */
export function signIn(token) {
  const trimmed = token.trim().replace(/^Bearer\s+/i, "");
  const claims = decodeClaims(trimmed);
  if (expired(claims)) throw new Error("This token has expired: ask for a new one.");
  sessionStorage.setItem(KEY, trimmed);
  current = { token: trimmed, claims };
  scheduleExpiry();
  emit("signed-in");
}

/** End the session; `reason` is shown on the sign-in page. */
export function signOut(reason = "You signed out.") {
  sessionStorage.removeItem(KEY);
  current = null;
  clearTimeout(expiryTimer);
  emit(reason);
}

function scheduleExpiry() {
  clearTimeout(expiryTimer);
  const ms = current.claims.exp * 1000 - Date.now();
  expiryTimer = setTimeout(checkExpiry, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
}

/** Sign out if the token has expired (timers sleep with the laptop, so check on wake too). */
export function checkExpiry() {
  if (!current) return;
  if (expired(current.claims)) signOut("Your session expired. Sign in again with a new token.");
  else scheduleExpiry();
}

/** Restore the tab's session, or take a token handed over in the URL fragment. */
export function restore() {
  const notice = dropQueryToken();
  const handed = takeFragmentToken();
  const token = handed ?? sessionStorage.getItem(KEY);
  if (!token) return notice;
  try {
    signIn(token);
    return null;
  } catch (err) {
    sessionStorage.removeItem(KEY);
    return err.message;
  }
}

/**
 * A token handed over while the console is already open (a same-document navigation to
 * `#token=…`): take it and start that session, or end the current one if it is unusable.
 */
export function acceptHandedToken() {
  const handed = takeFragmentToken();
  if (handed === null) return false;
  try {
    signIn(handed);
  } catch (err) {
    signOut(err.message);
  }
  return true;
}

// `#token=<jwt>` (optionally `&view=/flags`): read it, then remove it from the address bar
// and from history, so it is neither bookmarked, shared by copy-paste, nor kept in history.
function takeFragmentToken() {
  if (!location.hash.startsWith("#token=")) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  const view = params.get("view");
  const next = view && view.startsWith("/") ? `#${view}` : "";
  history.replaceState(null, "", location.pathname + location.search + next);
  return token;
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
