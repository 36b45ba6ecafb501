// Sign-in through the gateway's identity provider (docs/console.md, contract §15).
//
// The gateway is the OpenID Connect client: the page never sees a token. It learns who is
// signed in from /auth/session (an HttpOnly cookie, sent by the browser, identifies the
// session), and sends the session's CSRF token on every write. Signing in and coming back
// after the session expired both go through /auth/login with the page's own route, so the
// person lands where they were.

const JSON_HEADERS = { Accept: "application/json" };

/** How this gateway signs people in: {provider, token_handover, paste}. */
export async function config() {
  try {
    const response = await fetch("/auth/config", {
      headers: JSON_HEADERS,
      cache: "no-store",
      credentials: "omit",
    });
    if (response.ok) return await response.json();
  } catch {
    // an older gateway without /auth: paste only, as before
  }
  return { provider: false, token_handover: true, paste: true };
}

/** The session the cookie names, as {sub, roles, customer_id, expires_at, csrf_token}, or null. */
export async function current() {
  const response = await fetch("/auth/session", {
    headers: JSON_HEADERS,
    cache: "no-store",
    credentials: "same-origin",
  });
  if (!response.ok) return null;
  return response.json();
}

/** Leave for the provider's sign-in; the gateway brings the person back to `route`. */
export function begin(route = location.hash) {
  const next = route && route.startsWith("#/") ? `?next=${encodeURIComponent(route)}` : "";
  location.assign(`/auth/login${next}`);
}

const AGAIN_KEY = "footgw.console.signin-again"; // a time, never a token
const AGAIN_MS = 30_000;

/**
 * The session expired: sign in again at once, keeping the route. Once only within 30 s: a
 * session that expires as it starts (a clock far off) must not become a redirect loop, so the
 * second time (false) the person gets the sign-in page and presses the button themselves.
 */
export function again() {
  const last = Number(sessionStorage.getItem(AGAIN_KEY) || 0);
  if (Date.now() - last < AGAIN_MS) return false;
  sessionStorage.setItem(AGAIN_KEY, String(Date.now()));
  begin();
  return true;
}

/** End the session at the gateway, then at the provider where it can. */
export async function end(csrf) {
  let target = null;
  try {
    const response = await fetch("/auth/logout", {
      method: "POST",
      headers: { ...JSON_HEADERS, "X-CSRF-Token": csrf },
      cache: "no-store",
      credentials: "same-origin",
    });
    if (response.ok) target = (await response.json()).end_session_url;
  } catch {
    // the gateway could not be reached: the page forgets the session all the same
  }
  if (target) location.assign(target);
}
