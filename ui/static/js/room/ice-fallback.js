// Which ICE transport policy the room's peer connection uses (docs/coturn.md).
//
// Direct media first ("all": host, server-reflexive and relay candidates). When a connection
// never got connected — ICE failed, or nothing connected for ICE_GIVE_UP_MS — and the
// server offers a TURN relay, the next connection is relay-only ("relay"), TURN over TLS on
// 443 included: what a hospital network that blocks UDP and every port but 443 still
// passes, without the direct candidates' checks timing out first. A relay-only connection
// that fails too goes back to "all" (the relay itself may be what is down).
//
// An ICE restart on the same connection (media-session.js, when a connection that worked
// loses its path) changes nothing here: that connection was connected, so it keeps its policy
// if it is replaced later; only connections that never connected switch.
//
// Used by media-session.js: `new RTCPeerConnection(ice.configuration(servers))`, then
// `ice.watch(pc)`.

/** A connection not connected after this long counts as an ICE failure. */
const ICE_GIVE_UP_MS = 10000;

/** The server offers a TURN relay (turn: or turns: URL with credentials). */
export function hasRelay(iceServers) {
  return (iceServers || []).some((server) => {
    const urls = Array.isArray(server.urls) ? server.urls : [server.urls];
    return server.credential && urls.some((url) => /^turns?:/.test(String(url)));
  });
}

export class IceFallback {
  #relay = false;
  #last = null; // {pc, policy, since, connected, failed}
  #asked = "all"; // the policy configuration() gave last

  /** "all" or "relay": the policy of the next connection. */
  get policy() {
    return this.#relay ? "relay" : "all";
  }

  /** The RTCConfiguration of the next peer connection, given the server's `iceServers`. */
  configuration(iceServers) {
    const servers = iceServers || [];
    this.#judgeLast(servers);
    const policy = this.#relay && hasRelay(servers) ? "relay" : "all";
    this.#asked = policy;
    return { iceServers: servers, bundlePolicy: "max-bundle", iceTransportPolicy: policy };
  }

  /** Follow `pc` (made with configuration()) to know whether it ever got connected. */
  watch(pc) {
    const last = { pc, policy: this.#asked, since: Date.now(), connected: false, failed: false };
    this.#last = last;
    const update = () => {
      if (pc.connectionState === "connected") last.connected = true;
      if (pc.connectionState === "failed" || pc.iceConnectionState === "failed") last.failed = true;
    };
    pc.addEventListener("connectionstatechange", update);
    pc.addEventListener("iceconnectionstatechange", update);
  }

  /** The previous connection is being replaced: switch policy if it never connected. */
  #judgeLast(servers) {
    const last = this.#last;
    this.#last = null;
    if (!last || last.connected) return;
    if (!last.failed && Date.now() - last.since < ICE_GIVE_UP_MS) return; // replaced for another reason
    if (last.policy !== "relay" && hasRelay(servers)) {
      console.info("room media: no direct connection, trying the TURN relay only");
      this.#relay = true;
    } else if (last.policy === "relay") {
      console.info("room media: the TURN relay did not connect either, trying everything");
      this.#relay = false;
    }
  }
}
