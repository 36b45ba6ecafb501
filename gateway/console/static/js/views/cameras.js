// Customer: my cameras with their zones (and a way to change them), and each camera's clips
// with a Play button (a playback session, js/player.js) and a delete button. Deleting is for
// good, so it asks twice, in the page (no modal dialog).

import { api, path } from "../api.js";
import { play, stop } from "../player.js";
import { badge, busy, bytes, errorBox, field, h, select, statusLine, table, when } from "../dom.js";

const ZONES = [
  ["outdoor", "Outdoor"],
  ["indoor", "Indoor"],
  ["private", "Private (bedroom, bathroom, nursery)"],
];
const ZONE_KIND = { outdoor: "ok", indoor: "info", private: "warn" };

export async function render(root, { session }) {
  const customerId = session.claims.customerId;
  const { cameras } = await api("GET", path("/v1/cameras", customerId));
  root.append(
    h("p", {
      class: "muted",
      text: "The zone decides who may ever see a camera: private cameras are shown to staff only when a grant includes them. A camera with no zone set counts as private.",
    }),
  );
  if (!cameras.length) {
    root.append(h("p", { class: "empty", text: "No cameras yet." }));
    return;
  }
  root.append(
    h(
      "div",
      { class: "cards" },
      cameras.map((c) => cameraCard(customerId, c)),
    ),
  );
}

function cameraCard(customerId, camera) {
  const titleId = `camera-${camera.camera_id}`;
  const card = h("article", { class: "card camera", "aria-labelledby": titleId });
  const head = () =>
    h(
      "header",
      { class: "card-head" },
      h("h2", { id: titleId, text: camera.label || camera.camera_id }),
      badge(
        camera.zone_set === false ? `${camera.zone} (not set)` : camera.zone,
        ZONE_KIND[camera.zone] || "info",
      ),
    );
  const clips = h("div", { class: "clips" });
  card.append(
    head(),
    h("p", { class: "muted" }, h("code", { text: camera.camera_id })),
    zoneForm(customerId, camera, card, head),
    clipsToggle(customerId, camera, clips),
    clips,
  );
  return card;
}

function zoneForm(customerId, camera, card, head) {
  const zone = select("zone", ZONES, camera.zone);
  const label = h("input", {
    name: "label",
    type: "text",
    value: camera.label || "",
    maxlength: "100",
    autocomplete: "off",
  });
  const result = h("div", { class: "form-result" });
  const form = h(
    "form",
    { class: "inline-form" },
    field("Zone", zone),
    field("Label", label),
    h("button", { type: "submit", text: "Save" }),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const done = busy(form);
    try {
      const saved = await api("PUT", path("/v1/cameras", customerId, camera.camera_id), {
        body: { zone: zone.value, label: label.value.trim() },
      });
      Object.assign(camera, saved || { zone: zone.value, label: label.value.trim() }, {
        zone_set: true,
      });
      card.firstChild.replaceWith(head());
      result.replaceChildren(
        statusLine(`Saved: ${camera.label || camera.camera_id} is ${camera.zone}.`),
      );
    } catch (err) {
      result.replaceChildren(errorBox(err));
    } finally {
      done();
    }
  });
  return form;
}

function clipsToggle(customerId, camera, box) {
  const button = h("button", {
    type: "button",
    class: "secondary",
    "aria-expanded": "false",
    text: "Show clips",
  });
  button.addEventListener("click", async () => {
    if (button.getAttribute("aria-expanded") === "true") {
      button.setAttribute("aria-expanded", "false");
      button.textContent = "Show clips";
      await stopPlayer(box);
      box.replaceChildren();
      return;
    }
    button.setAttribute("aria-expanded", "true");
    button.textContent = "Hide clips";
    await loadClips(customerId, camera, box);
  });
  return button;
}

async function stopPlayer(box) {
  const slot = box.querySelector(".player-slot");
  if (slot) await stop(slot);
}

async function loadClips(customerId, camera, box) {
  await stopPlayer(box);
  box.replaceChildren(statusLine("Loading clips…"));
  const player = h("div", { class: "player-slot" });
  try {
    const { clips } = await api("GET", path("/v1/footage", customerId, camera.camera_id));
    box.replaceChildren(
      player,
      clips.length
        ? table(
            `Clips of ${camera.label || camera.camera_id}`,
            [
              ["Recorded", (c) => when(c.recorded_at)],
              ["Clip", (c) => h("code", { text: c.clip_id })],
              ["Size", (c) => bytes(c.size)],
              ["", (c) => playButton(customerId, camera, c, player)],
              ["", (c) => deleteControl(customerId, camera, c, box)],
            ],
            clips,
          )
        : h("p", { class: "empty", text: "No clips." }),
    );
  } catch (err) {
    box.replaceChildren(errorBox(err));
  }
}

function playButton(customerId, camera, clip, player) {
  return h("button", {
    type: "button",
    text: "Play",
    "aria-label": `Play clip ${clip.clip_id}`,
    on: {
      click: () =>
        play(
          player,
          { customer_id: customerId, camera_id: camera.camera_id, clip_id: clip.clip_id },
          { label: `${camera.label || camera.camera_id}, ${clip.clip_id}` },
        ),
    },
  });
}

// Two steps: "Delete" turns into "Delete for good" + "Cancel"; keyboard focus follows.
function deleteControl(customerId, camera, clip, box) {
  const wrap = h("span", { class: "delete" });
  const first = h("button", {
    type: "button",
    class: "danger",
    text: "Delete",
    "aria-label": `Delete clip ${clip.clip_id}`,
  });
  const sure = h("button", {
    type: "button",
    class: "danger",
    text: "Delete for good",
    "aria-label": `Delete clip ${clip.clip_id} for good`,
  });
  const cancel = h("button", { type: "button", class: "secondary", text: "Cancel" });
  first.addEventListener("click", () => {
    wrap.replaceChildren(sure, " ", cancel);
    sure.focus();
  });
  cancel.addEventListener("click", () => {
    wrap.replaceChildren(first);
    first.focus();
  });
  sure.addEventListener("click", async () => {
    sure.disabled = true;
    cancel.disabled = true;
    try {
      await api("DELETE", path("/v1/footage", customerId, camera.camera_id, clip.clip_id));
      await loadClips(customerId, camera, box);
      box.prepend(
        statusLine(`Deleted ${clip.clip_id}. The audit log keeps a record that you deleted it.`),
      );
    } catch (err) {
      sure.disabled = false;
      cancel.disabled = false;
      wrap.append(errorBox(err));
    }
  });
  wrap.append(first);
  return wrap;
}
