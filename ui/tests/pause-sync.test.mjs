// Pausing the videos of hidden tiles on the server (ui/static/js/room/pause-sync.js), with a
// recorded `call` in place of the socket: what is sent, and when nothing is.
import assert from "node:assert/strict";
import { test } from "node:test";

import { PauseSync } from "../static/js/room/pause-sync.js";

const cam = { mid: "0", participant_id: "p-b", source: "camera", kind: "video", track_id: "t-cam" };
const mic = { mid: "1", participant_id: "p-b", source: "audio", kind: "audio", track_id: "t-mic" };
const scr = { mid: "2", participant_id: "p-b", source: "screen", kind: "video", track_id: "t-scr", paused: true };

function recorder({ ready = () => true, answer = async () => ({ ok: true }) } = {}) {
  const calls = [];
  const pauses = new PauseSync({
    call: (event, data) => (calls.push(`${event} ${data.track_id}`), answer(event, data)),
    ready,
  });
  return { pauses, calls };
}

test("a hidden tile's video is paused, shown again it is resumed; audio never", async () => {
  const { pauses, calls } = recorder();
  pauses.setTracks([cam, mic, scr]);
  await pauses.setHidden("p-b:camera", true);
  await pauses.setHidden("p-b:camera", true);
  await pauses.setHidden("p-b:camera", false);
  // the share arrived paused (the server's flag) while its tile is visible: resumed
  assert.deepEqual(calls, ["rtc:pause t-cam", "rtc:resume t-scr", "rtc:resume t-cam"]);
});

test("nothing is sent without a media connection in the room", async () => {
  let ready = false;
  const { pauses, calls } = recorder({ ready: () => ready });
  pauses.setTracks([cam]);
  await pauses.setHidden("p-b:camera", true);
  assert.deepEqual(calls, []);
  ready = true;
  await pauses.sync();
  assert.deepEqual(calls, ["rtc:pause t-cam"]);
});

test("a new connection's tracks start over: a hidden tile is paused again", async () => {
  const { pauses, calls } = recorder();
  pauses.setTracks([cam]);
  await pauses.setHidden("p-b:camera", true);
  pauses.reset();
  await pauses.sync();
  assert.deepEqual(calls, ["rtc:pause t-cam"]); // no tracks until the new connection's offer
  pauses.setTracks([{ ...cam, track_id: "t-cam-2" }]);
  await pauses.sync();
  assert.deepEqual(calls, ["rtc:pause t-cam", "rtc:pause t-cam-2"]);
});

test("changes during a sync are done after it, one call at a time", async () => {
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  const { pauses, calls } = recorder({ answer: (event, data) => (data.track_id === "t-cam" ? gate : Promise.resolve({ ok: true })) });
  pauses.setTracks([cam, { ...scr, paused: false }]);
  const first = pauses.setHidden("p-b:camera", true);
  const second = pauses.setHidden("p-b:screen", true); // while the first call is out
  assert.deepEqual(calls, ["rtc:pause t-cam"]);
  release({ ok: true });
  await first;
  await second;
  assert.deepEqual(calls, ["rtc:pause t-cam", "rtc:pause t-scr"]);
});

test("a refused call: an unknown track is skipped, a lost socket stops the round", async () => {
  const { pauses, calls } = recorder({
    answer: async (event, data) => {
      throw Object.assign(new Error("no"), { code: data.track_id === "t-cam" ? "unknown_track" : "disconnected" });
    },
  });
  pauses.setTracks([cam, { ...scr, paused: false }, { ...cam, mid: "3", participant_id: "p-c", track_id: "t-c" }]);
  await pauses.setHidden("p-b:camera", true);
  await pauses.setHidden("p-b:screen", true);
  await pauses.setHidden("p-c:camera", true);
  // t-cam refused as unknown (recorded as paused anyway, as before); t-scr lost with the socket
  assert.deepEqual(calls, ["rtc:pause t-cam", "rtc:pause t-scr", "rtc:pause t-scr"]);
});
