// The network-quality bars follow what is received (ui/static/js/room/reception.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { STALL_MS, inboundVideoByTile, receptionStep, worse } from "../static/js/room/reception.js";

function run(samples, expectVideo = true) {
  let state = null;
  const out = [];
  samples.forEach(([frames, received, lost], i) => {
    const step = receptionStep(state, { framesDecoded: frames, packetsReceived: received, packetsLost: lost, expectVideo }, i * 1000);
    state = step.state;
    out.push(step.quality);
  });
  return out;
}

test("frames decoded at 30 per second without loss: « bon »", () => {
  assert.deepEqual(run([[0, 0, 0], [30, 300, 0], [60, 600, 0]]), [null, "good", "good"]);
});

test("a freeze: no frame decoded for more than 2 s says « pas d'image », whatever the loss", () => {
  const q = run([[0, 0, 0], [30, 300, 0], [30, 300, 0], [30, 300, 0], [30, 300, 0], [60, 600, 0]]);
  assert.equal(STALL_MS, 2000);
  assert.deepEqual(q, [null, "good", "poor", "poor", "none", "good"]);
});

test("loss from the inbound-rtp counters: moyen above 2 %, faible above 8 %", () => {
  assert.deepEqual(run([[0, 0, 0], [30, 970, 30]]), [null, "fair"]);
  assert.deepEqual(run([[0, 0, 0], [30, 900, 100]]), [null, "poor"]);
});

test("a camera turned off, or a tile nobody sees, expects no picture", () => {
  assert.deepEqual(run([[0, 0, 0], [0, 10, 0], [0, 20, 0], [0, 30, 0], [0, 40, 0]], false), [null, "good", "good", "good", "good"]);
});

test("the worse of the server's report and what is received", () => {
  assert.equal(worse("good", "none"), "none");
  assert.equal(worse("poor", "fair"), "poor");
  assert.equal(worse(null, "fair"), "fair");
  assert.equal(worse("good", undefined), "good");
});

test("inbound-rtp entries are matched to tiles by track id", () => {
  const report = new Map([
    ["a", { type: "inbound-rtp", kind: "video", trackIdentifier: "t1", framesDecoded: 5, packetsReceived: 50, packetsLost: 1 }],
    ["b", { type: "inbound-rtp", kind: "audio", trackIdentifier: "t2", packetsReceived: 9 }],
    ["c", { type: "inbound-rtp", kind: "video", trackIdentifier: "zz", framesDecoded: 1 }],
  ]);
  const remote = { "p1:camera": [{ id: "t1", kind: "video" }, { id: "t2", kind: "audio" }] };
  assert.deepEqual(inboundVideoByTile(report, remote), { "p1:camera": { framesDecoded: 5, packetsReceived: 50, packetsLost: 1 } });
});
