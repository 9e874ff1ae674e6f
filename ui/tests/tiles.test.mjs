// The one tile key (ui/static/js/room/tiles.js): the server's tracks, the rendered tiles,
// the visibility reports and the pause sync all name a tile the same way.
import assert from "node:assert/strict";
import { test } from "node:test";

import { PauseSync } from "../static/js/room/pause-sync.js";
import { callTiles, initialState, roomReducer } from "../static/js/room/state.js";
import { LOCAL, tileKey, tileParticipant, tileSource, trackTileKey } from "../static/js/room/tiles.js";

const A = "6f1c2a9e-0000-4000-8000-00000000000a";

test("a tile is a participant's camera or screen share", () => {
  assert.equal(tileKey(A, "camera"), `${A}:camera`);
  assert.equal(tileKey(A, "screen"), `${A}:screen`);
  assert.equal(tileKey(A), `${A}:camera`);
  assert.equal(tileParticipant(tileKey(A, "screen")), A);
});

test("a screen share's video has its own tile; microphone and screen audio join the camera's", () => {
  assert.equal(tileSource("screen", "video"), "screen");
  assert.equal(tileSource("screen", "audio"), "camera");
  assert.equal(tileSource("camera", "video"), "camera");
  assert.equal(tileSource("audio", "audio"), "camera");
  assert.equal(tileSource("screen", undefined), "camera");
  assert.equal(trackTileKey({ participant_id: A, source: "screen", kind: "video" }), `${A}:screen`);
  assert.equal(trackTileKey({ participant_id: A, source: "audio", kind: "audio" }), `${A}:camera`);
});

test("the rendered tile, the stream it plays and the pause sync use the same key", async () => {
  const camera = { participant_id: A, source: "camera", kind: "video", mid: "0", track_id: "t-cam" };
  const voice = { participant_id: A, source: "audio", kind: "audio", mid: "1", track_id: "t-mic" };
  const share = { participant_id: A, source: "screen", kind: "video", mid: "2", track_id: "t-scr" };
  let s = roomReducer(initialState({ userId: "u-me" }), {
    type: "joined",
    ack: { status: "joined", room: {}, participant_id: "p-me", role: "host", participants: [{ participant_id: A, name: "Dr A" }] },
  });
  for (const info of [camera, voice, share]) s = roomReducer(s, { type: "track", ...info, track: { kind: info.kind, id: info.track_id } });
  const { tiles } = callTiles(s, { name: "Moi" });
  const remoteKeys = tiles.filter((x) => !x.local).map((x) => x.key);
  assert.deepEqual(remoteKeys.sort(), Object.keys(s.remote).sort());
  assert.deepEqual(remoteKeys.sort(), [trackTileKey(camera), trackTileKey(share)].sort());

  // The visibility tracker reports the rendered keys; the pause sync pauses the video of
  // exactly that tile.
  const calls = [];
  const pauses = new PauseSync({ call: async (event, data) => calls.push([event, data.track_id]), ready: () => true });
  pauses.setTracks([camera, voice, share]);
  const cameraTile = tiles.find((x) => !x.local && !x.screen);
  await pauses.setHidden(cameraTile.key, true);
  assert.deepEqual(calls, [["rtc:pause", "t-cam"]]);
});

test("keys stay the same across a rejoin as the same participant; one's own tiles never change key", () => {
  const ack = (me) => ({ status: "joined", room: {}, participant_id: me, role: "host", participants: [{ participant_id: A, name: "Dr A" }] });
  let s = roomReducer(initialState(), { type: "joined", ack: ack("p-1") });
  s = roomReducer(s, { type: "screen-started", stream: {} });
  const before = callTiles(s, { name: "Moi" }).tiles.map((x) => x.key);
  // back after the grace period as a new participant: the others' tiles are the same
  s = roomReducer(s, { type: "joined", ack: ack("p-2") });
  const after = callTiles(s, { name: "Moi" }).tiles.map((x) => x.key);
  assert.deepEqual(after, before);
  assert.deepEqual(before, [tileKey(LOCAL, "camera"), tileKey(LOCAL, "screen"), tileKey(A, "camera")]);
});
