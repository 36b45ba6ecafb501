// Playing a clip. A <video> cannot send an Authorization header, so the console asks the
// gateway for a playback session (POST /v1/playback, authorized and audited like a GET of the
// clip) and hands the session's URL to the video. That URL is a capability for this one view:
// it carries no bearer token, the gateway checks every request through it (a revoked grant or
// a suspension ends it at the next request) and records them as one view (contract §5).

import { ApiError, api, path } from "./api.js";
import { h, when } from "./dom.js";

// What each box plays now: box -> {session_id, video}. Replacing a player ends its session,
// and so does leaving the view (stopAll), so "watching now" never lists a closed player.
const playing = new Map();

/**
 * Open a playback session for `clip` ({customer_id, camera_id, clip_id}) and show it in `box`:
 * the video, what it plays under and until when, and a Stop button. `headers` carries a staff
 * member's declared purpose and justification; `onRefused(err)` may return a node shown under
 * a refusal (the desk's "Request access"). Resolves to the session, or null if refused.
 */
export async function play(box, clip, { headers, label, onRefused } = {}) {
  await stop(box);
  box.replaceChildren(h("p", { class: "notice", role: "status", text: "Opening the clip…" }));
  let playback;
  try {
    playback = await api("POST", "/v1/playback", {
      body: { customer_id: clip.customer_id, camera_id: clip.camera_id, clip_id: clip.clip_id },
      headers,
    });
  } catch (err) {
    box.replaceChildren(refusal(err, "The gateway refused to play this clip"));
    const more = onRefused ? onRefused(err) : null;
    if (more) box.append(more);
    return null;
  }
  const video = h("video", {
    controls: true,
    preload: "auto",
    playsinline: true,
    "aria-label": label || `Clip ${clip.clip_id}`,
  });
  const problem = h("div", { class: "form-result" });
  const stopButton = h("button", { type: "button", class: "secondary", text: "Stop" });
  stopButton.addEventListener("click", async () => {
    stopButton.disabled = true;
    await stop(box);
    box.replaceChildren(
      h("p", { class: "notice", role: "status", text: "Stopped: the playback session has ended." }),
    );
  });
  // A refused range (grant revoked, principal suspended, session ended) surfaces as a media
  // error or a stall; ask the same URL once why, and say it in the page.
  let explained = false;
  const explain = async () => {
    if (explained) return;
    explained = true;
    problem.replaceChildren(await whyStopped(playback.url));
  };
  video.addEventListener("error", explain);
  video.addEventListener("stalled", () => {
    if (video.networkState === HTMLMediaElement.NETWORK_IDLE) explain();
  });
  video.src = playback.url;
  playing.set(box, { session_id: playback.session_id, video });
  box.replaceChildren(
    h(
      "section",
      { class: "player card", "aria-label": `Playing ${clip.clip_id}` },
      video,
      h(
        "dl",
        { class: "facts compact" },
        fact("Clip", h("code", { text: `${clip.camera_id} / ${clip.clip_id}` })),
        playback.grant
          ? fact(
              "Plays under grant",
              h("code", { text: playback.grant.grant_id }),
              " until ",
              when(playback.grant.expires_at),
            )
          : fact("Plays as", "the footage's owner"),
        fact("Session ends", ...sessionEnd(playback)),
      ),
      h("div", { class: "actions" }, stopButton),
      problem,
    ),
  );
  return playback;
}

/** End what `box` plays, if anything: the video lets go of its URL, the session is ended. */
export async function stop(box) {
  const current = playing.get(box);
  if (!current) return;
  playing.delete(box);
  current.video.removeAttribute("src");
  current.video.load();
  try {
    await endSession(current.session_id);
  } catch {
    // Already ended (revoked, idle): nothing left to stop.
  }
}

/** End every playback this page holds (the view is being replaced). */
export function stopAll() {
  return Promise.all([...playing.keys()].map(stop));
}

/** DELETE /v1/playback/{session_id}: the principal or the footage's owner ends a playback. */
export function endSession(sessionId) {
  return api("DELETE", path("/v1/playback", sessionId));
}

function sessionEnd(playback) {
  const idle = Number(playback.idle_timeout_seconds);
  const parts = [when(playback.expires_at)];
  if (idle > 0) parts.push(`, or after ${Math.round(idle / 60)} min without a request`);
  return parts;
}

async function whyStopped(url) {
  let code = "";
  let message = "";
  try {
    // One byte, same origin, no credentials: the play URL is its own authorization.
    const r = await fetch(url, {
      headers: { Range: "bytes=0-0" },
      cache: "no-store",
      credentials: "omit",
      redirect: "manual",
    });
    if (r.ok || r.type === "opaqueredirect") return retry();
    const data = await r.json().catch(() => null);
    code = data && data.error && typeof data.error.code === "string" ? data.error.code : "";
    message = data && data.error && typeof data.error.message === "string" ? data.error.message : "";
    if (!message) message = `The gateway answered ${r.status}.`;
  } catch {
    message = "The gateway could not be reached.";
  }
  return refusal(new ApiError(0, code, message), "Playback stopped");
}

function retry() {
  return h("p", {
    class: "error",
    role: "alert",
    text: "The video could not be played. Press Play on the clip again to retry.",
  });
}

/** A refusal said plainly, with the contract's code beside it (`no_grant`, `grant_revoked`). */
export function refusal(err, lead) {
  const message = err && err.message ? err.message : String(err);
  return h(
    "p",
    { class: "error refusal", role: "alert", dataset: { code: (err && err.code) || "" } },
    h("strong", { text: `${lead}: ` }),
    message,
    err && err.code ? [" ", h("code", { text: `(${err.code})` })] : null,
  );
}

function fact(name, ...value) {
  return [h("dt", { text: name }), h("dd", {}, value)];
}
