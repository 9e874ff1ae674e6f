// The live side of a room, without any UI: the Socket.IO connection (presence, lobby,
// moderation, chat) and the one RTCPeerConnection with the SFU (rtc:* signalling), kept up
// through network trouble (the socket reconnects and joins again, the media is resynchronised
// or restarted), and which remote videos to pause because nobody sees them.
// Pages subscribe with `client.on(event, fn)`; every client event is acknowledged {ok, error?}.
//
// Events for the page (besides the server's own): "connected", "disconnected",
// "connection" {status: connected|reconnecting|failed, was, downFor}, "rejoined" (the
// room:join acknowledgement after a reconnect), "rejoin-failed" (error), "refused" (the server
// would not take the connection: session ended), "media-reset" (remote tracks are gone until
// the new connection brings them), "track", "pc-state", "rtc-error".
import { io } from "../vendor/socket.io.mjs";

export class LiveError extends Error {
  constructor(error) {
    super((error && error.message) || "refused");
    this.code = (error && error.code) || "refused";
  }
}

export function uuid4() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const SERVER_EVENTS = [
  "participant:joined", "participant:updated", "participant:left",
  "lobby:arrived", "lobby:left", "lobby:admitted", "lobby:refused",
  "room:muted", "room:unmute_requested", "room:removed", "room:ended", "room:replaced", "room:updated",
  "session:ended", "chat:message", "chat:typing",
  "rtc:offer", "rtc:candidate", "rtc:tracks", "rtc:screen", "rtc:speaker", "rtc:stats", "rtc:state",
];
/** The server announces these before it closes the connection on purpose: no reconnect. */
const FINAL_EVENTS = ["room:removed", "room:ended", "room:replaced", "lobby:refused", "session:ended"];
/** room:join refusals on a reconnect that end the stay (the page says why). */
const FINAL_JOIN_ERRORS = new Set(["removed", "room_closed", "room_not_found", "room_locked", "room_full"]);

/** After this long without getting back, stop trying and let the user retry (a test may
 * shorten it with `window.CONSILIUM_GIVE_UP_MS` before the page loads). */
export const GIVE_UP_MS = Number(globalThis.CONSILIUM_GIVE_UP_MS) || 60000;
/** A peer connection "disconnected" this long is treated as failed. */
const PC_DISCONNECTED_MS = 5000;
/** A new peer connection that is not connected after this long is started again. */
const PC_CONNECT_TIMEOUT_MS = 15000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const videoKey = (info) => `${info.participant_id}:${info.source === "screen" ? "screen" : "camera"}`;

export class RoomClient {
  constructor(roomId, { giveUpAfter = GIVE_UP_MS } = {}) {
    this.roomId = roomId;
    this.handlers = new Map();
    // -- presence and connection state
    this.participantId = null;
    this.joinedOnce = false; // room:join answered "joined" at least once
    this.inRoom = false; // ... on the current socket
    this.rejoining = false; // a new socket is joining the room again
    this.final = false; // removed, room ended, replaced, refused, session over: never reconnect
    this.draining = false; // the server said it is stopping: reconnect at once
    this.closed = false;
    this.status = "connecting"; // then connected | reconnecting | failed
    this.giveUpAfter = giveUpAfter;
    this.lostAt = null; // performance.now() when the trouble began
    this.giveUpTimer = null;
    // -- media with the SFU
    this.pc = null;
    this.connectionId = null; // the server's name of this.pc (rtc:join, rtc:offer, rtc:state)
    this.midInfo = new Map(); // server m-line mid → {participant_id, source, kind, track_id}
    this.negotiating = Promise.resolve();
    this.heldCandidates = null; // our ICE candidates while our offer is with the server
    this.wantOffer = false; // an offer of ours was rolled back (glare): offer again once stable
    this.sources = {}; // local MediaStreamTrack id → "camera" | "screen"
    this.rtcAvailable = true;
    this.mediaWanted = false; // startMedia was called: keep the media up
    this.localTracks = []; // camera and microphone, published on every (re)connection
    this.screen = null; // {track, stream} while sharing the screen
    this.screenTransceiver = null;
    this.mediaState = {}; // {audio, video, screen} as last sent with participant:update
    this.mediaDown = false; // the media connection is being restored
    this.mediaStale = false; // an offer of ours was lost with the socket: restart, not resync
    this.restarting = null; // the running media restart (a promise)
    this.joiningMedia = false; // rtc:join sent, its answer not there yet
    this.earlyOffer = null; // a server offer for the connection whose rtc:join answer is on the way
    this.pcTimer = null;
    this.watchdog = null;
    // -- videos nobody sees (see VisibilityTracker)
    this.hidden = new Set(); // `${participant_id}:camera|screen` of hidden tiles
    this.paused = new Map(); // track_id → paused on the server, as far as we know
    this.pauseSyncing = false;
    this.pauseAgain = false;

    this.socket = io({
      path: "/socket.io",
      transports: ["websocket", "polling"],
      withCredentials: true,
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 4000,
    });
    for (const name of FINAL_EVENTS) this.socket.on(name, () => (this.final = true));
    for (const name of SERVER_EVENTS) this.socket.on(name, (data) => this.fire(name, data));
    // The server lost live messages (its Redis fan-out came back): join again, which brings
    // the participants and the chat history (merged by id) up to date.
    this.socket.on("room:resync", () => this.resync());
    // The node is stopping: it disconnects us next; reconnect (elsewhere) without waiting.
    this.socket.on("server:draining", () => (this.draining = true));
    this.socket.on("connect", () => this.onConnect());
    this.socket.on("disconnect", (reason) => this.onDisconnect(reason));
    this.socket.on("connect_error", (err) => this.onConnectError(err));
    this.on("rtc:offer", (offer) => this.onServerOffer(offer));
    this.on("rtc:state", (d) => this.onServerState(d));
  }

  on(name, fn) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(fn);
    return () => this.handlers.get(name).delete(fn);
  }

  fire(name, data) {
    (this.handlers.get(name) || []).forEach((fn) => {
      try {
        fn(data);
      } catch (e) {
        console.error(name, e);
      }
    });
  }

  connect() {
    this.socket.connect();
  }

  /** Emit with acknowledgement; resolves the ack, rejects LiveError on {ok:false}. Nothing is
   * queued while disconnected (socket.io would send it before the next room:join, where it
   * would be refused): the call fails at once with code "disconnected". */
  call(event, data = {}, timeout = 10000) {
    return new Promise((resolve, reject) => {
      if (!this.socket.connected) return reject(new LiveError({ code: "disconnected", message: `${event}: not connected` }));
      this.socket.timeout(timeout).emit(event, data, (err, ack) => {
        if (err) return reject(new LiveError({ code: this.socket.connected ? "timeout" : "disconnected", message: `${event}: no answer` }));
        if (!ack || ack.ok === false) return reject(new LiveError(ack && ack.error));
        resolve(ack);
      });
    });
  }

  async join() {
    const ack = await this.call("room:join", { room_id: this.roomId });
    if (ack.status === "joined") {
      this.inRoom = true;
      this.joinedOnce = true;
      this.participantId = ack.participant_id;
      this.updateStatus();
    }
    return ack;
  }

  async leave() {
    try {
      await this.call("room:leave", {}, 3000);
    } catch {
      /* leaving anyway */
    }
    this.close();
  }

  close() {
    this.closed = true;
    clearTimeout(this.giveUpTimer);
    this.dropPc();
    this.socket.disconnect();
  }

  // --- staying connected -------------------------------------------------------------------

  onConnect() {
    this.fire("connected");
    if (this.joinedOnce) {
      this.rejoining = true;
      this.rejoin().finally(() => {
        this.rejoining = false;
        this.updateStatus();
      });
    }
  }

  resync() {
    if (!this.inRoom || this.rejoining) return;
    this.rejoining = true;
    this.rejoin().finally(() => {
      this.rejoining = false;
      this.updateStatus();
    });
  }

  onDisconnect(reason) {
    this.inRoom = false;
    const delay = this.draining ? 50 + Math.random() * 250 : 500;
    this.draining = false;
    this.fire("disconnected", reason);
    if (this.closed || this.final) return;
    if (reason === "io server disconnect") {
      // The server closed this connection without a word (a removal, the end of the room,
      // another tab and a finished session announce themselves first): socket.io reconnects
      // by itself only after a network failure, so connect again.
      setTimeout(() => !this.closed && !this.final && !this.socket.connected && this.status !== "failed" && this.socket.connect(), delay);
    }
    this.updateStatus();
  }

  onConnectError(err) {
    // The server refusing the connection (its session ended: signed out, expired, a removed
    // guest) ends socket.io's attempts (the socket is no longer active); a network error
    // does not.
    if (!this.socket.active && !this.closed && err && err.data && err.data.retry_after) {
      // a service behind the server is down for a moment (database, Redis): try again
      setTimeout(() => !this.closed && !this.final && !this.socket.connected && this.socket.connect(), err.data.retry_after * 1000);
      this.fire("connect_error", err);
      this.updateStatus();
      return;
    }
    if (!this.socket.active && !this.closed) {
      this.final = true;
      this.dropPc();
      this.fire("refused", err);
      return;
    }
    this.fire("connect_error", err);
    this.updateStatus();
  }

  /** Back on a new socket: the same room:join (the server's grace period keeps the same
   * participant), then the media: kept if the server still has it, otherwise restarted. */
  async rejoin() {
    const before = this.participantId;
    let ack;
    try {
      ack = await this.join();
    } catch (e) {
      if (FINAL_JOIN_ERRORS.has(e.code)) {
        this.final = true;
        this.dropPc();
        this.socket.disconnect();
        this.fire("rejoin-failed", e);
        return;
      }
      // the server is there but did not answer (restarting?): drop this socket, socket.io
      // connects again (and we join again) after its back-off
      if (this.socket.connected) this.socket.io.engine.close();
      return;
    }
    this.fire("rejoined", ack);
    if (ack.status !== "joined") {
      // back in the lobby (a guest whose admission is gone): no media until admitted again
      this.stopMedia();
      return;
    }
    await this.resyncMedia(before);
    this.syncPauses();
  }

  /** What the page shows: "reconnecting" while the socket or the media is being restored,
   * "failed" once we gave up (until retry()), "connected" otherwise. */
  updateStatus() {
    if (this.closed || this.final) return;
    const trouble = (this.joinedOnce && (!this.socket.connected || this.rejoining)) || this.mediaDown;
    if (!this.joinedOnce && !trouble) return; // the first connection: the page's own screen
    if (this.status === "failed" && trouble) return;
    this.setStatus(trouble ? "reconnecting" : "connected");
  }

  setStatus(next) {
    if (next === this.status) return;
    const was = this.status;
    this.status = next;
    let downFor = null;
    if (next === "reconnecting") {
      if (this.lostAt === null) this.lostAt = performance.now();
      if (!this.giveUpTimer) this.giveUpTimer = setTimeout(() => this.giveUp(), this.giveUpAfter);
    } else {
      clearTimeout(this.giveUpTimer);
      this.giveUpTimer = null;
      if (next === "connected" && this.lostAt !== null) {
        downFor = performance.now() - this.lostAt;
        this.lostAt = null;
      }
    }
    this.fire("connection", { status: next, was, downFor });
  }

  giveUp() {
    this.giveUpTimer = null;
    if (this.status !== "reconnecting") return;
    this.setStatus("failed");
    // No more attempts in the background: the page says so and offers to retry.
    if (!this.socket.connected) this.socket.disconnect();
  }

  /** "Réessayer": start over (socket, then media) with a new time limit. */
  retry() {
    if (this.closed || this.final) return;
    this.status = "reconnecting"; // from failed, without a second "lost" moment
    this.fire("connection", { status: "reconnecting", was: "failed", downFor: null });
    this.giveUpTimer = setTimeout(() => this.giveUp(), this.giveUpAfter);
    if (!this.socket.connected) this.socket.connect();
    else if (this.mediaWanted) this.restartMedia("retry");
    else this.updateStatus();
  }

  // --- media with the SFU ----------------------------------------------------------------

  /** Open the peer connection and publish `stream` (camera and microphone). */
  async startMedia(stream) {
    this.mediaWanted = true;
    this.localTracks = stream ? stream.getTracks() : [];
    for (const track of this.localTracks) this.sources[track.id] = "camera";
    try {
      return await this.connectMedia();
    } catch (e) {
      if (e.code === "rtc_unavailable") {
        this.rtcAvailable = false;
        this.mediaWanted = false;
      } else {
        this.mediaLost(`start: ${e.code || e.name}`);
      }
      throw e;
    }
  }

  stopMedia() {
    this.mediaWanted = false;
    this.mediaDown = false;
    this.dropPc();
  }

  /** A new peer connection with the server (rtc:join drops the one it had): answer the
   * server's first offer if others publish, then publish our camera, microphone and screen
   * share as they are now (a camera switched off stays off: its track is disabled). */
  async connectMedia() {
    this.dropPc();
    this.fire("media-reset");
    this.joiningMedia = true;
    this.earlyOffer = null;
    let info;
    try {
      info = await this.call("rtc:join", {});
    } finally {
      this.joiningMedia = false;
    }
    const pc = new RTCPeerConnection({ iceServers: info.ice_servers || [], bundlePolicy: "max-bundle" });
    this.pc = pc;
    this.connectionId = info.connection_id || null;
    pc.onicecandidate = (e) => {
      // Trickled one by one (the server's own candidates are in its SDP), with the browser's
      // field names {candidate, sdpMid, sdpMLineIndex, usernameFragment}. Held back while our
      // offer is with the server: it drops candidates that arrive before it applied the offer.
      if (pc !== this.pc || !e.candidate) return;
      if (this.heldCandidates) this.heldCandidates.push(e.candidate.toJSON());
      else this.sendCandidate(e.candidate.toJSON());
    };
    pc.ontrack = (e) => {
      if (pc !== this.pc) return;
      const mid = e.transceiver && e.transceiver.mid;
      this.fire("track", { track: e.track, mid, ...(this.midInfo.get(mid) || {}) });
    };
    pc.addEventListener("connectionstatechange", () => this.onPcState(pc));
    const early = this.earlyOffer;
    this.earlyOffer = null;
    if (early && early.connection_id === this.connectionId) this.onServerOffer(early);
    // Others already publish: the server offers them right after the join. Answer that offer
    // before offering ours, so that the two never cross (the server cannot roll back).
    if ((info.tracks || []).length) await this.waitAnswered(pc, 3000);
    if (pc !== this.pc) throw new LiveError({ code: "replaced", message: "media restarted meanwhile" });
    const live = this.localTracks.filter((tr) => tr.readyState === "live");
    const stream = new MediaStream(live);
    for (const track of live) pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    if (this.screen && this.screen.track.readyState === "live") {
      this.screenTransceiver = pc.addTransceiver(this.screen.track, { direction: "sendonly", streams: [this.screen.stream] });
    }
    await this.enqueue(pc, () => this.offerOnce(pc));
    this.watchdog = setTimeout(() => pc === this.pc && pc.connectionState !== "connected" && this.mediaLost("not connected in time"), PC_CONNECT_TIMEOUT_MS);
    this.resendMediaState();
    this.syncPauses();
    return info;
  }

  /** Close the current peer connection; what was queued for it is dropped. */
  dropPc() {
    const pc = this.pc;
    this.pc = null;
    this.connectionId = null;
    this.midInfo = new Map();
    this.paused = new Map();
    this.heldCandidates = null;
    this.wantOffer = false;
    this.screenTransceiver = null;
    this.negotiating = Promise.resolve();
    clearTimeout(this.pcTimer);
    clearTimeout(this.watchdog);
    if (pc) {
      pc.onicecandidate = null;
      pc.ontrack = null;
      try {
        pc.close();
      } catch {
        /* already closed */
      }
    }
  }

  waitAnswered(pc, ms) {
    return new Promise((resolve) => {
      const done = () => (clearTimeout(timer), off(), resolve());
      const timer = setTimeout(done, ms);
      const off = this.on("rtc:answered", (answered) => answered === pc && done());
    });
  }

  onPcState(pc) {
    if (pc !== this.pc) return;
    const state = pc.connectionState;
    this.fire("pc-state", state);
    clearTimeout(this.pcTimer);
    if (state === "connected") {
      clearTimeout(this.watchdog);
      if (this.mediaDown) {
        this.mediaDown = false;
        this.updateStatus();
      }
    } else if (state === "failed") {
      this.mediaLost("peer connection failed");
    } else if (state === "disconnected") {
      // ICE may come back by itself within a few seconds (a Wi-Fi hiccup)
      this.pcTimer = setTimeout(() => pc === this.pc && pc.connectionState === "disconnected" && this.mediaLost("peer connection disconnected"), PC_DISCONNECTED_MS);
    }
  }

  /** The server's side of our connection failed or was closed (removed after the grace
   * period, a server restart of the media...). Events about an older connection are ignored. */
  onServerState(d) {
    if (!d || !d.connection_id || d.connection_id !== this.connectionId) return;
    if (d.state === "failed" || d.state === "closed") this.mediaLost(`server connection ${d.state}`);
  }

  mediaLost(reason) {
    if (!this.mediaWanted || this.closed || this.final) return;
    console.info("room media: restarting:", reason);
    this.restartMedia(reason);
  }

  /** Start the media over: a new peer connection and rtc:join (aiortc cannot do an ICE
   * restart, so there is no cheaper way), retried with a growing delay while in the room.
   * Without the socket it waits for the rejoin, which calls it again. */
  restartMedia(reason) {
    this.mediaDown = true;
    this.updateStatus();
    if (this.restarting) return this.restarting;
    this.restarting = (async () => {
      let delay = 500;
      for (;;) {
        if (this.closed || this.final || this.status === "failed" || !this.mediaWanted) return;
        if (!this.inRoom) {
          this.mediaStale = true;
          return;
        }
        try {
          this.mediaStale = false;
          await this.connectMedia();
          return;
        } catch (e) {
          if (e.code === "rtc_unavailable") {
            this.rtcAvailable = false;
            this.stopMedia();
            this.fire("rtc-error", e);
            return;
          }
          console.info("room media: restart failed:", reason, e.code || e.name, e.message);
          await sleep(delay);
          delay = Math.min(delay * 2, 4000);
        }
      }
    })().finally(() => (this.restarting = null));
    return this.restarting;
  }

  /** After a rejoin: the same participant whose server connection is still the one we hold
   * keeps its media (rtc:resync sends again an offer we missed); anything else restarts. */
  async resyncMedia(before) {
    if (!this.mediaWanted) return;
    if (this.restarting) return; // it goes on now that we are back in the room
    const pc = this.pc;
    if (this.participantId !== before || this.mediaStale || !pc || pc.connectionState === "failed" || pc.connectionState === "closed") {
      return this.restartMedia("rejoined");
    }
    try {
      const st = await this.call("rtc:resync", {});
      if (pc !== this.pc) return;
      if (st.connection_id !== this.connectionId || st.state === "failed" || st.state === "closed") {
        return this.restartMedia(`server connection ${st.state}`);
      }
    } catch (e) {
      if (pc === this.pc) return this.restartMedia(`resync: ${e.code}`);
      return;
    }
    if (this.wantOffer) this.publish();
  }

  /** Run `fn` after the negotiations already queued for `pc`, whatever their outcome: one
   * failed negotiation must not stall the ones after it. Nothing runs for a replaced pc. */
  enqueue(pc, fn) {
    const run = this.negotiating.catch(() => {}).then(() => (pc === this.pc ? fn() : undefined));
    this.negotiating = run.catch(() => {});
    return run;
  }

  /** Offer our current tracks to the server; one negotiation at a time. */
  publish() {
    const pc = this.pc;
    if (!pc) return Promise.resolve();
    return this.enqueue(pc, () => this.offerOnce(pc)).catch((e) => this.negotiationFailed(pc, e, true));
  }

  negotiationFailed(pc, e, ours) {
    if (pc !== this.pc) return;
    if (e && e.code === "disconnected") {
      // Our offer may or may not have reached the server: only a fresh start is sure. A lost
      // answer is different: the server still waits for it and sends its offer again.
      if (ours) this.mediaStale = true;
      return;
    }
    if (e && e.code === "timeout") return this.mediaLost("negotiation timed out");
    console.warn("rtc:", e && (e.code || e.name), e && e.message);
    this.fire("rtc-error", e);
  }

  async offerOnce(pc) {
    this.wantOffer = false;
    if (pc.signalingState !== "stable") {
      this.wantOffer = true;
      return;
    }
    const offer = await pc.createOffer();
    this.heldCandidates = this.heldCandidates || [];
    await pc.setLocalDescription(offer);
    const sources = {};
    for (const tr of pc.getTransceivers()) {
      const track = tr.sender && tr.sender.track;
      if (!track || !tr.mid || tr.currentDirection === "stopped") continue;
      sources[tr.mid] = track.kind === "audio" ? "audio" : this.sources[track.id] || "camera";
    }
    let ack;
    try {
      ack = await this.call("rtc:offer", { sdp: pc.localDescription.sdp, type: "offer", sources });
    } catch (e) {
      if (pc !== this.pc) return;
      this.flushCandidates();
      if (e.code !== "glare") throw e;
      // The server (impolite: aiortc cannot roll back) has an offer of its own in flight: we
      // are the polite side, so take ours back, answer theirs (queued after us), then offer
      // again. Should their offer not come, offer again anyway.
      await pc.setLocalDescription({ type: "rollback" });
      this.wantOffer = true;
      setTimeout(() => this.wantOffer && pc === this.pc && this.publish(), 1500);
      return;
    }
    if (pc !== this.pc) return;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
    } finally {
      this.flushCandidates();
    }
  }

  sendCandidate(candidate) {
    // Without the socket a candidate is lost: ICE completes with the others, or the
    // connection fails and is started again.
    if (this.socket.connected && this.inRoom) this.socket.emit("rtc:candidate", candidate, () => {});
  }

  flushCandidates() {
    const held = this.heldCandidates || [];
    this.heldCandidates = null;
    for (const c of held) this.sendCandidate(c);
  }

  onServerOffer(offer) {
    if (offer.connection_id && offer.connection_id !== this.connectionId) {
      // For the connection being set up (its rtc:join answer is on the way): keep it.
      // Otherwise it is about a connection we dropped.
      if (this.joiningMedia) this.earlyOffer = offer;
      return;
    }
    const pc = this.pc;
    if (!pc) return;
    this.enqueue(pc, async () => {
      // The latest offer's list labels every m-line (a line may carry another participant's
      // track after a renegotiation); set before applying it, so `ontrack` finds its label.
      const tracks = offer.tracks || [];
      this.midInfo = new Map(tracks.map((tr) => [tr.mid, tr]));
      this.paused = new Map(tracks.filter((tr) => tr.kind === "video").map((tr) => [tr.track_id, !!tr.paused]));
      this.fire("tracks-map", tracks);
      if (pc.signalingState !== "stable") {
        await pc.setLocalDescription({ type: "rollback" });
        this.wantOffer = true;
      }
      await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      if (pc !== this.pc) return;
      await this.call("rtc:answer", { sdp: pc.localDescription.sdp, type: "answer" });
      // Tracks whose m-line was just (re)labelled: tell the page again.
      for (const tr of pc.getTransceivers()) {
        const meta = this.midInfo.get(tr.mid);
        if (meta && tr.receiver && tr.receiver.track && tr.currentDirection !== "inactive" && tr.currentDirection !== "stopped") {
          this.fire("track", { track: tr.receiver.track, mid: tr.mid, ...meta });
        }
      }
      this.fire("rtc:answered", pc);
      this.syncPauses();
      if (this.wantOffer) this.publish();
    }).catch((e) => this.negotiationFailed(pc, e, false));
  }

  async replaceTrack(kind, track) {
    const old = this.localTracks.find((tr) => tr.kind === kind);
    this.localTracks = [...this.localTracks.filter((tr) => tr.kind !== kind), track];
    this.sources[track.id] = "camera";
    if (!this.pc) return;
    const sender = this.pc.getSenders().find((s) => s.track && (s.track === old || (s.track.kind === kind && this.sources[s.track.id] !== "screen")));
    if (sender) await sender.replaceTrack(track);
  }

  async startScreen(track, stream) {
    this.screen = { track, stream };
    this.sources[track.id] = "screen";
    if (!this.pc) return;
    this.screenTransceiver = this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    await this.publish();
  }

  async stopScreen() {
    this.screen = null;
    if (!this.pc || !this.screenTransceiver) return;
    try {
      this.screenTransceiver.stop();
    } catch {
      /* already stopped */
    }
    this.screenTransceiver = null;
    await this.publish();
  }

  /** participant:update {audio?, video?, screen?}, remembered: a media restart publishes the
   * tracks again (which the server reflects in presence), then says again what is on. */
  setMediaState(changes) {
    Object.assign(this.mediaState, changes);
    return this.call("participant:update", changes);
  }

  resendMediaState() {
    const state = { ...this.mediaState };
    if (!Object.keys(state).length) return;
    this.call("participant:update", state).catch((e) => {
      if (e.code !== "muted_by_host") return;
      delete state.audio; // a host muted us meanwhile: the rest still holds
      this.call("participant:update", state).catch(() => {});
    });
  }

  // --- pausing videos nobody sees -------------------------------------------------------

  /** The tile `${participant_id}:camera|screen` is hidden (or visible again). */
  setVideoHidden(key, hidden) {
    if (hidden) this.hidden.add(key);
    else this.hidden.delete(key);
    this.syncPauses();
  }

  /** Bring the server's paused tracks in line with the hidden tiles: rtc:pause for a hidden
   * tile's video, rtc:resume (from a keyframe) for a visible one. Audio is never paused. Run
   * after each change, each server offer (new track ids) and each new connection (the
   * server's new subscriptions start unpaused). */
  async syncPauses() {
    if (this.pauseSyncing) {
      this.pauseAgain = true;
      return;
    }
    this.pauseSyncing = true;
    try {
      do {
        this.pauseAgain = false;
        const pc = this.pc;
        if (!pc || !this.inRoom) return;
        for (const info of [...this.midInfo.values()]) {
          if (info.kind !== "video" || !info.track_id) continue;
          const want = this.hidden.has(videoKey(info));
          if ((this.paused.get(info.track_id) || false) === want) continue;
          try {
            await this.call(want ? "rtc:pause" : "rtc:resume", { track_id: info.track_id });
          } catch (e) {
            if (e.code !== "unknown_track") return; // the socket is gone: done again on rejoin
          }
          if (pc !== this.pc) break;
          this.paused.set(info.track_id, want);
        }
      } while (this.pauseAgain);
    } finally {
      this.pauseSyncing = false;
    }
  }

  // --- chat -------------------------------------------------------------------------------

  /** The room's messages from a room:join acknowledgement's `chat` page (newest first), with
   * older pages fetched until one we already have (`known`: ids) or the first message: what
   * was said while we were away, oldest first. */
  async chatSince(page, known) {
    const out = [...((page && page.messages) || [])];
    let more = page && page.has_more;
    for (let i = 0; more && known.size && out.length && !out.some((m) => known.has(m.id)) && i < 10; i++) {
      const older = await this.call("chat:history", { before: out[out.length - 1].id, limit: 100 });
      out.push(...(older.messages || []));
      more = older.has_more;
    }
    return out.reverse();
  }
}

// --- which remote videos the user can see ----------------------------------------------------
//
// Which remote video tiles the user can see. The room pauses the video of a
// tile nobody looks at (the SFU stops sending it: rtc:pause) and resumes it when it shows
// again (rtc:resume, which starts from a fresh keyframe).
//
// A tile is visible while some of it is on screen and the page is visible:
// - IntersectionObserver on the tile: a tile scrolled out of the grid, or hidden with
//   display:none (the phone's speaker view hides the other tiles behind the featured one),
//   does not intersect the viewport;
// - document.visibilityState "hidden" (another tab, a minimised window, a locked phone) hides
//   every tile...
// - ...except the one whose video is in Picture-in-Picture, which the user still sees.
//
// Becoming hidden is reported after `hideDelay` ms of staying hidden (a tile flicking past
// while scrolling, or a layout switch, does not pause and resume); becoming visible is
// reported at once.

export class VisibilityTracker {
  /** onChange(key, visible) is called when a tile's settled visibility changes. */
  constructor(onChange, { hideDelay = 1500 } = {}) {
    this.onChange = onChange;
    this.hideDelay = hideDelay;
    this.tiles = new Map(); // key -> {el, intersecting, reported: true|false|undefined, timer}
    this.io =
      typeof IntersectionObserver === "function"
        ? new IntersectionObserver((entries) => this.intersections(entries), { threshold: 0 })
        : null;
    this.refresh = () => this.updateAll();
    document.addEventListener("visibilitychange", this.refresh);
    // Picture-in-Picture events are fired at the <video>; capture them on the document.
    document.addEventListener("enterpictureinpicture", this.refresh, true);
    document.addEventListener("leavepictureinpicture", this.refresh, true);
  }

  /** Watch the tile element of `key`; returns the function that stops watching it. A tile
   * moved to another place in the page (grid ↔ featured view) is a new element under the
   * same key: it replaces the old one and keeps the reported state. */
  observe(key, el) {
    const old = this.tiles.get(key);
    if (old && old.el !== el && this.io) this.io.unobserve(old.el);
    const tile = old || { reported: undefined, timer: null };
    tile.el = el;
    tile.intersecting = !this.io; // without IntersectionObserver, on screen until told otherwise
    this.tiles.set(key, tile);
    if (this.io) this.io.observe(el);
    else this.update(key);
    return () => this.unobserve(key, el);
  }

  unobserve(key, el) {
    const tile = this.tiles.get(key);
    if (!tile || tile.el !== el) return; // already replaced by the tile's new element
    if (this.io) this.io.unobserve(el);
    clearTimeout(tile.timer);
    this.tiles.delete(key);
  }

  /** The settled state: false only once a tile has been reported hidden. */
  visible(key) {
    const tile = this.tiles.get(key);
    return !tile || tile.reported !== false;
  }

  hiddenKeys() {
    return [...this.tiles].filter(([, tile]) => tile.reported === false).map(([key]) => key);
  }

  intersections(entries) {
    for (const entry of entries) {
      for (const [key, tile] of this.tiles) {
        if (tile.el === entry.target) {
          tile.intersecting = entry.isIntersecting;
          this.update(key);
        }
      }
    }
  }

  /** What the user can see right now (before the debounce). */
  seen(tile) {
    const pip = document.pictureInPictureElement;
    if (pip && tile.el.contains(pip)) return true;
    if (document.visibilityState === "hidden") return false;
    return tile.intersecting;
  }

  update(key) {
    const tile = this.tiles.get(key);
    if (!tile) return;
    const seen = this.seen(tile);
    if (seen) {
      clearTimeout(tile.timer);
      tile.timer = null;
      if (tile.reported !== true) {
        tile.reported = true;
        this.onChange(key, true);
      }
      return;
    }
    if (tile.reported === false || tile.timer) return;
    tile.timer = setTimeout(() => {
      tile.timer = null;
      if (this.tiles.get(key) === tile && !this.seen(tile) && tile.reported !== false) {
        tile.reported = false;
        this.onChange(key, false);
      }
    }, this.hideDelay);
  }

  updateAll() {
    for (const key of this.tiles.keys()) this.update(key);
  }

  destroy() {
    if (this.io) this.io.disconnect();
    for (const tile of this.tiles.values()) clearTimeout(tile.timer);
    this.tiles.clear();
    document.removeEventListener("visibilitychange", this.refresh);
    document.removeEventListener("enterpictureinpicture", this.refresh, true);
    document.removeEventListener("leavepictureinpicture", this.refresh, true);
  }
}
