// Relay-only after a connection that never connected (ui/static/js/room/ice-fallback.js),
// with a stand-in peer connection whose states the test sets.
import assert from "node:assert/strict";
import { test } from "node:test";

import { IceFallback, hasRelay } from "../static/js/room/ice-fallback.js";

const STUN = { urls: ["stun:turn.example.org:3478"] };
const TURN = { urls: ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:443?transport=tcp"], username: "1:p", credential: "x" };

class FakePc {
  connectionState = "new";
  iceConnectionState = "new";
  #listeners = [];
  addEventListener(_name, fn) {
    this.#listeners.push(fn);
  }
  set(connection, ice = connection) {
    this.connectionState = connection;
    this.iceConnectionState = ice;
    for (const fn of this.#listeners) fn();
  }
}

function attempt(ice, servers) {
  const config = ice.configuration(servers);
  const pc = new FakePc();
  ice.watch(pc);
  return { config, pc };
}

test("a relay needs a turn: or turns: URL with a credential", () => {
  assert.equal(hasRelay([STUN]), false);
  assert.equal(hasRelay([{ urls: "turns:t:443", username: "u", credential: "c" }]), true);
  assert.equal(hasRelay([{ urls: ["turn:t:3478"] }]), false);
  assert.equal(hasRelay(undefined), false);
});

test("direct first; relay-only after an ICE failure; back to all if the relay fails too", () => {
  const ice = new IceFallback();
  const first = attempt(ice, [STUN, TURN]);
  assert.equal(first.config.iceTransportPolicy, "all");
  assert.equal(first.config.bundlePolicy, "max-bundle");
  first.pc.set("failed");
  const second = attempt(ice, [STUN, TURN]);
  assert.equal(second.config.iceTransportPolicy, "relay");
  second.pc.set("connected");
  second.pc.set("disconnected"); // a network change later: relay-only is kept
  const third = attempt(ice, [STUN, TURN]);
  assert.equal(third.config.iceTransportPolicy, "relay");
  third.pc.set("failed");
  assert.equal(attempt(ice, [STUN, TURN]).config.iceTransportPolicy, "all");
});

test("no relay offered, or a connection replaced early for another reason: stays direct", () => {
  const ice = new IceFallback();
  attempt(ice, [STUN]).pc.set("failed");
  assert.equal(attempt(ice, [STUN]).config.iceTransportPolicy, "all");
  const quick = new IceFallback();
  attempt(quick, [STUN, TURN]); // replaced at once (a rejoin), never failed
  assert.equal(attempt(quick, [STUN, TURN]).config.iceTransportPolicy, "all");
});
