// One way to call the gateway: bearer token in the Authorization header (or, for a provider
// sign-in, the gateway's HttpOnly session cookie plus the session's X-CSRF-Token on writes),
// no caching, errors turned into ApiError carrying the API's own code and message (§5).

import { session, sessionEnded, signOut, token } from "./session.js";

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details; // the API's whole error object (`how_to_ask`, contract §13)
  }
}

/** A path built from segments, each one percent-encoded (ids never change the route). */
export function path(...segments) {
  return segments.map((seg, i) => (i === 0 ? seg : encodeURIComponent(seg))).join("/");
}

/**
 * Call the API; resolves to the parsed JSON (null for 204), rejects with ApiError.
 * `headers` adds request headers (a staff member's declared purpose and justification).
 */
export async function api(method, route, { query, body, headers: extra } = {}) {
  const bearer = token();
  const s = session();
  if (!bearer && !(s && s.cookie)) throw new ApiError(401, "unauthenticated", "You are signed out.");
  const url = new URL(route, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(key, v));
    else if (value !== undefined && value !== null && value !== "")
      url.searchParams.set(key, value);
  }
  const headers = { ...(extra || {}), Accept: "application/json" };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  else if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = s.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: bearer ? "omit" : "same-origin",
      redirect: "error",
    });
  } catch {
    throw new ApiError(0, "network_error", "The gateway could not be reached.");
  }
  const data = await readJson(response);
  if (response.ok) return data;
  const error = data && data.error ? data.error : {};
  const failure = new ApiError(
    response.status,
    typeof error.code === "string" ? error.code : `http_${response.status}`,
    typeof error.message === "string" ? error.message : `The gateway answered ${response.status}.`,
    error,
  );
  if (response.status === 401 && !bearer) sessionEnded();
  else if (response.status === 401) signOut(`Signed out: ${failure.message}`);
  throw failure;
}

async function readJson(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Follow `after_seq` paging until `want` events or no more pages (analyst views). */
export async function auditEvents(query, want = 2000) {
  const events = [];
  let after = query.after_seq;
  for (let page = 0; page < 20 && events.length < want; page += 1) {
    const batch = await api("GET", "/v1/audit/events", {
      query: { ...query, after_seq: after, limit: Math.min(1000, want - events.length) },
    });
    events.push(...batch.events);
    if (batch.next_after_seq === null || batch.next_after_seq === undefined) break;
    after = batch.next_after_seq;
  }
  return events;
}

/** True when an endpoint is simply not served by this gateway (an older version). */
export function isMissing(err) {
  return err instanceof ApiError && (err.status === 404 || err.status === 405);
}
