// The room page's reducer (ui/static/js/room/state.js), in Node: no browser, no DOM.
import assert from "node:assert/strict";
import { test } from "node:test";

import { callTiles, initialState, layerOf, mergeMessages, networkOf, qualityOf, roomReducer } from "../static/js/room/state.js";

const ME = "u-me";
const track = (kind, id) => ({ kind, id });
const msg = (id, at, sender = "u-other") => ({ id, created_at: at, text: id, sender: { id: sender, name: sender } });
const joinedAck = (over = {}) => ({
  status: "joined",
  room: { title: "Avis" },
  participant_id: "p-me",
  role: "host",
  participants: [
    { participant_id: "p-me", name: "Moi" },
    { participant_id: "p-b", name: "Dr B" },
  ],
  lobby: [],
  ...over,
});

/** Freeze a state deeply: the reducer must not write into the state it is given. */
function deepFreeze(x) {
  if (x && typeof x === "object" && !Object.isFrozen(x)) {
    Object.freeze(x);
    Object.values(x).forEach(deepFreeze);
  }
  return x;
}

/** Apply actions one by one, each to a frozen state. */
function run(actions, state = initialState({ userId: ME })) {
  for (const a of actions) state = roomReducer(deepFreeze(state), a);
  return state;
}

test("the first state: connecting, grid, camera and microphone on unless chosen off", () => {
  const s = initialState({ userId: ME, choice: { camOn: false, cameraId: "cam-2" } });
  assert.equal(s.phase, "connecting");
  assert.equal(s.layout, "grid");
  assert.deepEqual(s.choice, { camOn: false, micOn: true, cameraId: "cam-2" });
  assert.equal(s.conn, "connected");
});

test("joining: the lobby first, then the room with who is here", () => {
  let s = run([{ type: "joined", ack: { status: "lobby", room: { title: "Avis" } } }]);
  assert.equal(s.phase, "lobby");
  assert.equal(s.room.title, "Avis");
  assert.equal(s.me, null);
  s = run([{ type: "joined", ack: joinedAck({ lobby: [{ guest_id: "g1", name: "Mme S" }] }) }], s);
  assert.equal(s.phase, "joined");
  assert.equal(s.me, "p-me");
  assert.equal(s.role, "host");
  assert.equal(s.participants.length, 2);
  assert.equal(s.lobby.length, 1);
});

test("a refused join says why; the stay's end keeps or sets its error", () => {
  assert.equal(run([{ type: "left", error: { code: "removed" } }]).phase, "removed");
  assert.equal(run([{ type: "left", error: { code: "room_closed" } }]).phase, "ended");
  const s = run([{ type: "left", error: { code: "room_full" } }]);
  assert.equal(s.phase, "error");
  assert.equal(s.phaseError.code, "room_full");
  assert.equal(run([{ type: "phase", phase: "refused" }], s).phaseError.code, "room_full");
  assert.equal(run([{ type: "phase", phase: "error", error: { code: "unauthenticated" } }]).phaseError.code, "unauthenticated");
});

test("presence: updated in place, a participant who leaves takes their tiles along", () => {
  const cam = track("video", "c"), scr = track("video", "s"), other = track("video", "o");
  let s = run([
    { type: "joined", ack: joinedAck() },
    { type: "participant", participant: { participant_id: "p-b", name: "Dr B", media: { audio: false } } },
    { type: "participant", participant: { participant_id: "p-c", name: "Dr C" } },
    { type: "track", participant_id: "p-b", source: "camera", kind: "video", track: cam },
    { type: "track", participant_id: "p-b", source: "screen", kind: "video", track: scr },
    { type: "track", participant_id: "p-bb", source: "camera", kind: "video", track: other },
  ]);
  assert.equal(s.participants.filter((p) => p.participant_id === "p-b").length, 1);
  assert.deepEqual(s.participants.find((p) => p.participant_id === "p-b").media, { audio: false });
  s = run([{ type: "participant-left", participant_id: "p-b" }], s);
  assert.deepEqual(s.participants.map((p) => p.participant_id).sort(), ["p-c", "p-me"]);
  assert.deepEqual(Object.keys(s.remote), ["p-bb:camera"]);
});

test("the lobby: a guest listed once, removed when gone", () => {
  const s = run([
    { type: "lobby-arrived", guest: { guest_id: "g1", name: "Mme S" } },
    { type: "lobby-arrived", guest: { guest_id: "g1", name: "Mme S." } },
    { type: "lobby-arrived", guest: { guest_id: "g2", name: "M. T" } },
  ]);
  assert.deepEqual(s.lobby.map((g) => g.name), ["Mme S.", "M. T"]);
  assert.deepEqual(run([{ type: "lobby-left", guest_id: "g1" }], s).lobby.map((g) => g.guest_id), ["g2"]);
});

test("remote tracks: a microphone joins its camera tile, a screen gets its own and the large view", () => {
  const mic = track("audio", "m"), cam = track("video", "c"), cam2 = track("video", "c2"), scr = track("video", "s");
  let s = run([
    { type: "track", participant_id: "p-b", source: "audio", kind: "audio", track: mic },
    { type: "track", participant_id: "p-b", source: "camera", kind: "video", track: cam },
  ]);
  assert.deepEqual(s.remote, { "p-b:camera": [mic, cam] });
  assert.equal(s.layout, "grid");
  // a new camera track replaces the one of its kind
  s = run([{ type: "track", participant_id: "p-b", source: "camera", kind: "video", track: cam2 }], s);
  assert.deepEqual(s.remote, { "p-b:camera": [mic, cam2] });
  s = run([{ type: "track", participant_id: "p-b", source: "screen", kind: undefined, track: scr }], s);
  assert.deepEqual(s.remote["p-b:screen"], [scr]);
  assert.equal(s.layout, "speaker");
  // a track without a label (no tracks list yet) changes nothing
  assert.equal(run([{ type: "track", track: track("video", "x") }], s), s);
});

test("a reused m-line: the track leaves the tile it fed before", () => {
  const t = track("video", "t"), mic = track("audio", "m");
  let s = run([
    { type: "track", participant_id: "p-b", source: "audio", kind: "audio", track: mic },
    { type: "track", participant_id: "p-b", source: "camera", kind: "video", track: t },
    { type: "track", participant_id: "p-c", source: "camera", kind: "video", track: t },
  ]);
  assert.deepEqual(s.remote, { "p-b:camera": [mic], "p-c:camera": [t] });
  // the line now labelled as p-b's camera: its track moves back, p-c's tile is left empty
  s = run([{ type: "track", participant_id: "p-b", source: "camera", kind: "video", track: t }], s);
  assert.deepEqual(s.remote, { "p-b:camera": [mic, t] });
});

test("a tile whose tracks did not change keeps its array (its <video> keeps its stream)", () => {
  const a = track("video", "a"), b = track("video", "b");
  const s1 = run([
    { type: "track", participant_id: "p-b", source: "camera", kind: "video", track: a },
    { type: "track", participant_id: "p-c", source: "camera", kind: "video", track: b },
  ]);
  const s2 = run([{ type: "track", participant_id: "p-c", source: "camera", kind: "video", track: b }], s1);
  assert.equal(s2.remote["p-b:camera"], s1.remote["p-b:camera"]);
  assert.equal(s2.remote["p-c:camera"], s1.remote["p-c:camera"]);
  const s3 = run([{ type: "tracks-map", tracks: [{ participant_id: "p-b", source: "camera", kind: "video" }, { participant_id: "p-c", source: "camera", kind: "video" }] }], s2);
  assert.equal(s3.remote, s2.remote);
});

test("what the server no longer sends leaves; a media reset empties; an ended share goes", () => {
  const cam = track("video", "c"), scr = track("video", "s");
  let s = run([
    { type: "track", participant_id: "p-b", source: "camera", kind: "video", track: cam },
    { type: "track", participant_id: "p-b", source: "screen", kind: "video", track: scr },
  ]);
  const kept = run([{ type: "tracks-map", tracks: [{ participant_id: "p-b", source: "camera", kind: "video" }, { participant_id: "p-b", source: "screen", kind: "audio" }] }], s);
  assert.deepEqual(Object.keys(kept.remote), ["p-b:camera"]);
  assert.deepEqual(Object.keys(run([{ type: "screen-ended", participant_id: "p-b" }], s).remote), ["p-b:camera"]);
  assert.deepEqual(run([{ type: "media-reset" }], s).remote, {});
});

test("chat: a message once, unread while the chat is closed, mine marked", () => {
  let s = run([
    { type: "chat-message", message: msg("m1", "2026-12-07T10:00:00Z") },
    { type: "chat-message", message: msg("m1", "2026-12-07T10:00:00Z") },
    { type: "chat-message", message: msg("m2", "2026-12-07T10:01:00Z", ME) },
  ]);
  assert.deepEqual(s.messages.map((m) => [m.id, m.mine]), [["m1", false], ["m2", true]]);
  assert.equal(s.unread, 3); // as before: every chat:message while the chat is closed
  s = run([{ type: "panel", panel: "chat" }], s);
  assert.equal(s.panel, "chat");
  assert.equal(s.unread, 0);
  s = run([{ type: "chat-message", message: msg("m3", "2026-12-07T10:02:00Z") }], s);
  assert.equal(s.unread, 0);
  s = run([{ type: "chat-sent", message: msg("m4", "2026-12-07T10:03:00Z") }, { type: "chat-sent", message: msg("m4", "2026-12-07T10:03:00Z") }], s);
  assert.deepEqual(s.messages.map((m) => m.id), ["m1", "m2", "m3", "m4"]);
  assert.equal(s.messages[3].mine, true);
  assert.equal(run([{ type: "panel", panel: "chat" }], s).panel, null);
});

test("chat after a rejoin: merged in order, what others said meanwhile counted unread", () => {
  let s = run([{ type: "chat-message", message: msg("m2", "2026-12-07T10:02:00Z") }]);
  s = run([{ type: "panel", panel: "people" }, { type: "panel", panel: "people" }], s);
  const missed = [msg("m1", "2026-12-07T10:01:00Z"), msg("m3", "2026-12-07T10:03:00Z", ME), msg("m4", "2026-12-07T10:04:00Z")];
  const after = run([{ type: "chat-caught-up", messages: missed, countUnread: true }], s);
  assert.deepEqual(after.messages.map((m) => m.id), ["m1", "m2", "m3", "m4"]);
  assert.equal(after.unread, s.unread + 2);
  // the first join: the history is not "unread"
  assert.equal(run([{ type: "chat-caught-up", messages: missed, countUnread: false }]).unread, 0);
  assert.deepEqual(mergeMessages(after.messages, missed), after.messages);
  assert.equal(mergeMessages(after.messages, missed), after.messages);
});

test("my media: toggles, a host's mute, a device change, a screen share", () => {
  const stream = { id: "s1" };
  let s = run([
    { type: "local", stream },
    { type: "toggle", kind: "video", on: false },
    { type: "toggle", kind: "audio", on: false },
    { type: "toggle", kind: "audio", on: true },
    { type: "muted-by-host" },
  ]);
  assert.equal(s.local, stream);
  assert.deepEqual(s.choice, { camOn: false, micOn: false });
  const fresh = { id: "s2" };
  s = run([{ type: "device-changed", kind: "video", deviceId: "cam-2", stream: fresh }, { type: "device-changed", kind: "audio", deviceId: "mic-2", stream: fresh }], s);
  assert.equal(s.local, fresh);
  assert.equal(s.choice.cameraId, "cam-2");
  assert.equal(s.choice.microphoneId, "mic-2");
  const share = { id: "screen" };
  s = run([{ type: "screen-started", stream: share }], s);
  assert.equal(s.screen, share);
  assert.equal(s.layout, "speaker");
  s = run([{ type: "screen-stopped" }, { type: "layout", layout: "grid" }], s);
  assert.equal(s.screen, null);
  assert.equal(s.layout, "grid");
});

test("network quality from rtc:stats", () => {
  assert.equal(qualityOf(null), null);
  assert.equal(qualityOf({ state: "connected", subscribed: [{ loss: 0, rtt_ms: 20 }] }), "good");
  assert.equal(qualityOf({ state: "connected", subscribed: [{ loss: 0.03 }, { loss: 0 }] }), "fair");
  assert.equal(qualityOf({ state: "connected", subscribed: [{ loss: 0, rtt_ms: 500 }] }), "poor");
  assert.equal(qualityOf({ state: "connecting", subscribed: [] }), "poor");
  const s = run([{ type: "stats", participants: { "p-b": { state: "connected", subscribed: [] }, "p-c": null } }]);
  assert.deepEqual(s.quality, { "p-b": "good", "p-c": null });
});

test("network quality from the server's estimate of the participant's link", () => {
  const link = (bandwidth) => ({ state: "connected", subscribed: [{ loss: 0, rtt_ms: 20 }], bandwidth });
  const ok = { estimate: 2_500_000, source: "transport-cc", loss: 0, rtt_ms: 30, paused_for_budget: 0 };
  assert.equal(qualityOf(link(ok)), "good");
  assert.equal(qualityOf(link({ ...ok, estimate: 600_000 })), "fair");
  assert.equal(qualityOf(link({ ...ok, estimate: 200_000 })), "poor");
  assert.equal(qualityOf(link({ ...ok, loss: 0.05 })), "fair"); // transport-cc loss, not only RR
  assert.equal(qualityOf(link({ ...ok, rtt_ms: 450 })), "poor");
  assert.equal(qualityOf(link({ ...ok, paused_for_budget: 1 })), "poor"); // a video had to be paused
  assert.equal(qualityOf(link({ ...ok, estimate: null, source: null })), "good"); // no estimate yet
  assert.deepEqual(networkOf(link(ok)), { estimate: 2_500_000, loss: 0, rtt_ms: 30, paused: 0 });
  assert.equal(networkOf({ state: "connected", subscribed: [] }), null);
  const s = run([{ type: "stats", participants: { "p-b": link({ ...ok, estimate: 200_000 }) } }]);
  assert.equal(s.quality["p-b"], "poor");
  assert.equal(s.network["p-b"].estimate, 200_000);
});

test("the layer of a participant's camera this client receives, on their tile", () => {
  const ok = { estimate: 2_500_000, source: "transport-cc", loss: 0, rtt_ms: 30, paused_for_budget: 0 };
  const cam = { track_id: "t1", kind: "video", source: "camera", publisher_id: "p-b", layer: "h", layer_width: 640, layer_height: 360, paused_for_budget: false };
  const mine = { state: "connected", bandwidth: ok, subscribed: [{ track_id: "a1", kind: "audio", source: "audio", publisher_id: "p-b" }, cam] };
  assert.deepEqual(layerOf(mine, "p-b"), { rid: "h", width: 640, height: 360, paused: false });
  assert.equal(layerOf(mine, "p-c"), null);
  assert.equal(layerOf({ subscribed: [{ ...cam, layer: undefined }] }, "p-b"), null); // one stream: no layer
  let s = run([{ type: "joined", ack: joinedAck() }]);
  s = roomReducer(s, { type: "stats", participants: { "p-me": mine, "p-b": { state: "connected", subscribed: [], bandwidth: ok } } });
  assert.deepEqual(s.network["p-b"].layer, { rid: "h", width: 640, height: 360, paused: false });
  assert.equal(s.network["p-me"].layer, undefined); // my own tile: nothing received from myself
  assert.equal(s.network["p-b"].estimate, 2_500_000);
});

test("dialogs, panels, the chat recipient, the screenshot, the connection banner", () => {
  let s = run([
    { type: "dialog", name: "invite", open: true },
    { type: "dialog", name: "devices", open: true },
    { type: "dialog", name: "invite", open: false },
    { type: "show-panel", panel: "people" },
    { type: "chat-to", to: "p-b" },
    { type: "shot", shot: { filename: "capture.png" } },
    { type: "connection", status: "reconnecting" },
    { type: "rtc-note", error: { code: "rtc_unavailable" } },
    { type: "media-error", error: { name: "NotFoundError" } },
    { type: "devices", devices: { cameras: [1], microphones: [] } },
    { type: "speaker", participant_id: "p-b" },
  ]);
  assert.deepEqual(s.dialogs, { invite: false, send: false, devices: true });
  assert.equal(s.panel, "people");
  assert.equal(s.chatTo, "p-b");
  assert.equal(s.shot.filename, "capture.png");
  assert.equal(s.conn, "reconnecting");
  assert.equal(s.rtcNote.code, "rtc_unavailable");
  assert.equal(s.mediaError.name, "NotFoundError");
  assert.equal(s.devices.cameras.length, 1);
  assert.equal(s.speaker, "p-b");
  assert.equal(run([{ type: "show-panel", panel: null }], s).panel, null);
  assert.throws(() => roomReducer(s, { type: "nope" }), /unknown action/);
});

test("the tiles: mine first, then the others by name, then their shares; the large view's choice", () => {
  const cam = (id) => track("video", id);
  let s = run([
    { type: "joined", ack: joinedAck({ participants: [{ participant_id: "p-me", name: "Moi", media: { audio: true } }, { participant_id: "p-z", name: "Zoé" }, { participant_id: "p-a", name: "Anne" }] }) },
    { type: "local", stream: { id: "local" } },
    { type: "toggle", kind: "audio", on: false },
    { type: "track", participant_id: "p-z", source: "camera", kind: "video", track: cam("z") },
  ]);
  let view = callTiles(s, { name: "Moi" });
  assert.deepEqual(view.tiles.map((x) => x.key), ["me:camera", "p-a:camera", "p-z:camera"]);
  assert.equal(view.tiles[0].local, true);
  assert.equal(view.tiles[0].p.media.audio, false); // my own toggle, not the server's echo yet
  assert.deepEqual(view.tiles[2].stream, [s.remote["p-z:camera"][0]]);
  assert.equal(view.tiles[1].stream, undefined);
  assert.equal(view.featured, null);
  assert.equal(view.rest, view.tiles);
  // speaker view: the active speaker, else someone else than me
  s = run([{ type: "layout", layout: "speaker" }], s);
  assert.equal(callTiles(s, { name: "Moi" }).featured.key, "p-a:camera");
  s = run([{ type: "speaker", participant_id: "p-z" }], s);
  assert.equal(callTiles(s, { name: "Moi" }).featured.key, "p-z:camera");
  // a share is shown large, someone else's before mine
  s = run([{ type: "screen-started", stream: { id: "mine" } }], s);
  assert.equal(callTiles(s, { name: "Moi" }).featured.key, "me:screen");
  s = run([{ type: "track", participant_id: "p-a", source: "screen", kind: "video", track: cam("as") }], s);
  view = callTiles(s, { name: "Moi", streamOf: (key) => `stream of ${key}` });
  assert.equal(view.featured.key, "p-a:screen");
  assert.equal(view.featured.stream, "stream of p-a:screen");
  assert.deepEqual(view.rest.map((x) => x.key), ["me:camera", "me:screen", "p-a:camera", "p-z:camera"]);
  assert.deepEqual(view.others.map((p) => p.name), ["Anne", "Zoé"]);
});

test("before presence lists me, my tile is made from the session", () => {
  const s = run([{ type: "joined", ack: joinedAck({ participants: [] }) }]);
  const { meP, tiles } = callTiles(s, { name: "Dr Claire Martin" });
  assert.equal(meP.name, "Dr Claire Martin");
  assert.equal(meP.participant_id, "p-me");
  assert.equal(tiles.length, 1);
});
