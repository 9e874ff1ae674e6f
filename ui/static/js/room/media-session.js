// The room's media with the SFU, without any UI: one RTCPeerConnection, the offers and
// answers over the live socket (rtc:* signalling), and the restart of it all when it breaks.
//
// It talks to the server through `link` (a LiveRoom: call(), send(), on(), and the
// read-only inRoom, ended and status) and handles the server's rtc:renegotiate and rtc:state
// itself.
//
// Negotiation (docs/rtc.md, "Negotiation: who offers"): this side starts every negotiation,
// one at a time in #negotiating: its own offers (rtc:offer) when what it publishes changes,
// and the server's offer pulled (rtc:pull) and answered (rtc:answer) when the server says
// it has one (rtc:renegotiate, or `renegotiate: true` in an acknowledgement). The server never
// offers unasked, so offers never cross: no glare, no rollback.
//
// Public surface: on(event, fn), start(stream), stop(), close(), restart(reason),
// resync(sameParticipant), replaceTrack(kind, track), startScreen(track, stream),
// stopScreen(), setMediaState(changes), mutedByHost(), and read-only wanted, available,
// down, connected.
//
// Events: "track" {track, mid, participant_id, source, kind, track_id} (a remote track and
// the tile it belongs to), "tracks-map" (the latest server offer's list of what it sends),
// "media-reset" (remote tracks are gone until the new connection brings them), "pc-state",
// "rtc-error"; for the wiring: "answered" (a server offer answered), "ready" (a new
// connection set up), "dropped" (the peer connection closed), "down" (the media went down,
// or came back: the connection status may change).
import { LiveError } from "./common.js";
import { Emitter } from "./emitter.js";
import { IceFallback } from "./ice-fallback.js";

/** A peer connection "disconnected" this long gets an ICE restart (a Wi-Fi hiccup may heal
 * by itself before). */
const PC_DISCONNECTED_MS = 2000;
/** An ICE restart whose media is not back after this long gives way to a full restart. */
const ICE_RESTART_TIMEOUT_MS = 8000;
/** A new peer connection that is not connected after this long is started again. */
const PC_CONNECT_TIMEOUT_MS = 15000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class MediaSession extends Emitter {
  #link;
  #pc = null;
  #connectionId = null; // the server's name of #pc (rtc:join, rtc:renegotiate, rtc:state)
  #midInfo = new Map(); // server m-line mid → {participant_id, source, kind, track_id}
  #negotiating = Promise.resolve();
  #heldCandidates = null; // our ICE candidates while our offer is with the server
  #pullQueued = false; // a pull of the server's offer is queued and has not started
  #sources = {}; // local MediaStreamTrack id → "camera" | "screen"
  #available = true;
  #wanted = false; // start() was called: keep the media up
  #localTracks = []; // camera and microphone, published on every (re)connection
  #screen = null; // {track, stream} while sharing the screen
  #screenTransceiver = null;
  #mediaState = {}; // {audio, video, screen} as last sent with participant:update
  #down = false; // the media connection is being restored
  #stale = false; // an offer of ours was lost with the socket: restart, not resync
  #restarting = null; // the running restart (a promise)
  #joining = false; // rtc:join sent, its answer not there yet
  #early = null; // rtc:renegotiate for the connection whose rtc:join answer is on the way
  #pcTimer = null;
  #watchdog = null;
  #everConnected = null; // the pc that has been connected at least once
  #iceRestart = null; // {pc, started, timer} while an ICE restart is under way
  #ice = new IceFallback(); // direct first, relay-only after a connection that never connected

  constructor(link) {
    super();
    this.#link = link;
    link.on("rtc:renegotiate", (d) => this.#onRenegotiate(d));
    link.on("rtc:state", (d) => this.#onServerState(d));
    // the room's media node was lost: its media is placed on another node; start it over there
    link.on("rtc:moved", () => this.#wanted && this.#pc && this.#lost("media moved to another node"));
    link.on("rtc:layers", (d) => this.#onLayers(d));
  }

  /** Dynacast: the server says which simulcast layers of our camera somebody receives;
   * the others are not encoded (`active: false`) until someone needs them again. */
  async #onLayers(d) {
    const pc = this.#pc;
    if (!pc || !d || !Array.isArray(d.active)) return;
    const transceiver = pc.getTransceivers().find((t) => t.mid === d.mid);
    if (!transceiver || !transceiver.sender) return;
    const params = transceiver.sender.getParameters();
    if (!params.encodings || params.encodings.length < 2) return;
    let changed = false;
    for (const encoding of params.encodings) {
      const active = d.active.includes(encoding.rid);
      if (encoding.rid && encoding.active !== active) {
        encoding.active = active;
        changed = true;
      }
    }
    if (changed) await transceiver.sender.setParameters(params).catch(() => {});
  }

  /** start() was called and the media is to be kept up. */
  get wanted() {
    return this.#wanted;
  }

  /** False once the server said it has no media service (rtc_unavailable). */
  get available() {
    return this.#available;
  }

  /** The media connection is being restored. */
  get down() {
    return this.#down;
  }

  /** A peer connection with the server is open (or being set up). */
  get connected() {
    return this.#pc !== null;
  }

  /** Open the peer connection and publish `stream` (camera and microphone). */
  async start(stream) {
    this.#wanted = true;
    this.#localTracks = stream ? stream.getTracks() : [];
    for (const track of this.#localTracks) this.#sources[track.id] = "camera";
    try {
      return await this.#connect();
    } catch (e) {
      if (e.code === "rtc_unavailable") {
        this.#available = false;
        this.#wanted = false;
      } else {
        this.#lost(`start: ${e.code || e.name}`);
      }
      throw e;
    }
  }

  /** The current peer connection's statistics (what is received: inbound-rtp), or null. */
  stats() {
    return this.#pc ? this.#pc.getStats() : Promise.resolve(null);
  }

  stop() {
    this.#wanted = false;
    this.#down = false;
    this.close();
  }

  /** Close the current peer connection; what was queued for it is dropped. */
  close() {
    const pc = this.#pc;
    this.#pc = null;
    this.#connectionId = null;
    this.#midInfo = new Map();
    this.#heldCandidates = null;
    this.#pullQueued = false;
    this.#screenTransceiver = null;
    this.#negotiating = Promise.resolve();
    clearTimeout(this.#pcTimer);
    clearTimeout(this.#watchdog);
    if (this.#iceRestart) clearTimeout(this.#iceRestart.timer);
    this.#iceRestart = null;
    this.fire("dropped");
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

  /** A new peer connection with the server (rtc:join drops the one it had): pull and answer
   * the server's first offer if others publish, then publish our camera, microphone and
   * screen share as they are now (a camera switched off stays off: its track is disabled). */
  async #connect() {
    this.close();
    this.fire("media-reset");
    this.#joining = true;
    this.#early = null;
    let info;
    try {
      info = await this.#link.call("rtc:join", {});
    } finally {
      this.#joining = false;
    }
    const pc = new RTCPeerConnection(this.#ice.configuration(info.ice_servers));
    this.#ice.watch(pc);
    this.#pc = pc;
    this.#connectionId = info.connection_id || null;
    pc.onicecandidate = (e) => {
      // Trickled one by one (the server's own candidates are in its SDP), with the browser's
      // field names {candidate, sdpMid, sdpMLineIndex, usernameFragment}. Held back while our
      // offer is with the server: it drops candidates that arrive before it applied the offer.
      if (pc !== this.#pc || !e.candidate) return;
      if (this.#heldCandidates) this.#heldCandidates.push(e.candidate.toJSON());
      else this.#link.send("rtc:candidate", e.candidate.toJSON());
    };
    pc.ontrack = (e) => {
      if (pc !== this.#pc) return;
      const mid = e.transceiver && e.transceiver.mid;
      this.fire("track", { track: e.track, mid, ...(this.#midInfo.get(mid) || {}) });
    };
    pc.addEventListener("connectionstatechange", () => this.#onPcState(pc));
    pc.addEventListener("iceconnectionstatechange", () => this.#onPcState(pc));
    const early = this.#early;
    this.#early = null;
    // Others already publish: pull the server's offer and answer it first (its m-lines come
    // before ours), then offer ours. Either order would do: the server never offers unasked.
    if (info.renegotiate || early === this.#connectionId) await this.#pull(pc);
    if (pc !== this.#pc) throw new LiveError({ code: "replaced", message: "media restarted meanwhile" });
    await this.#enqueue(pc, () => {
      const live = this.#localTracks.filter((tr) => tr.readyState === "live");
      const stream = new MediaStream(live);
      for (const track of live) pc.addTransceiver(track, publishInit(track, stream));
      if (this.#screen && this.#screen.track.readyState === "live") {
        this.#screenTransceiver = pc.addTransceiver(this.#screen.track, { direction: "sendonly", streams: [this.#screen.stream] });
      }
      // nothing to publish (no camera, no microphone): nothing to offer
      return pc.getTransceivers().length ? this.#offerOnce(pc) : undefined;
    });
    this.#watchdog = setTimeout(() => pc === this.#pc && pc.connectionState !== "connected" && this.#lost("not connected in time"), PC_CONNECT_TIMEOUT_MS);
    this.#resendMediaState();
    this.fire("ready");
    return info;
  }

  /** connectionstatechange and iceconnectionstatechange: an ICE path that broke (a Wi-Fi to
   * 4G switch, a new address) gets an ICE restart on the same connection first. */
  #onPcState(pc) {
    if (pc !== this.#pc) return;
    const state = pc.connectionState;
    const ice = pc.iceConnectionState;
    this.fire("pc-state", state);
    clearTimeout(this.#pcTimer);
    if (state === "connected" && (ice === "connected" || ice === "completed")) {
      clearTimeout(this.#watchdog);
      this.#everConnected = pc;
      const restart = this.#iceRestart;
      if (restart && restart.pc === pc) {
        clearTimeout(restart.timer);
        this.#iceRestart = null;
        const ms = Date.now() - restart.started;
        console.info(`room media: ICE restart: connected again after ${ms} ms`);
        this.fire("ice-restarted", { ms });
      }
      if (this.#down) {
        this.#down = false;
        this.fire("down", false);
      }
    } else if (state === "failed" || ice === "failed") {
      this.#recoverIce(pc, "peer connection failed");
    } else if (state === "disconnected" || ice === "disconnected") {
      // ICE may come back by itself within a moment (a Wi-Fi hiccup)
      this.#pcTimer = setTimeout(() => {
        if (pc === this.#pc && (pc.connectionState === "disconnected" || pc.iceConnectionState === "disconnected")) {
          this.#recoverIce(pc, "peer connection disconnected");
        }
      }, PC_DISCONNECTED_MS);
    }
  }

  /** The ICE path of a connection that worked broke: restart ICE on the same connection
   * (pc.restartIce() and our own offer, which carries new ICE credentials; the server
   * answers with its new ones and DTLS goes on). If the media is not back within
   * ICE_RESTART_TIMEOUT_MS, or the server refuses, start the media over. A connection that
   * never connected is started over at once (so IceFallback may switch to the relay). */
  #recoverIce(pc, reason) {
    if (pc !== this.#pc || !this.#wanted || this.#link.ended) return;
    if (this.#everConnected !== pc || typeof pc.restartIce !== "function") return this.#lost(reason);
    if (this.#iceRestart) return; // one is under way: its timer decides
    if (!this.#link.inRoom) return; // the socket is down too: resync() restarts ICE once back
    console.info("room media: ICE restart:", reason);
    this.#down = true;
    this.fire("down", true);
    const restart = { pc, started: Date.now(), timer: null };
    restart.timer = setTimeout(() => {
      if (this.#iceRestart !== restart) return;
      this.#iceRestart = null;
      if (pc === this.#pc) this.#lost(`ICE restart: media not back after ${ICE_RESTART_TIMEOUT_MS} ms`);
    }, ICE_RESTART_TIMEOUT_MS);
    this.#iceRestart = restart;
    this.#enqueue(pc, () => {
      pc.restartIce();
      return this.#offerOnce(pc);
    }).catch((e) => {
      if (this.#iceRestart !== restart || pc !== this.#pc) return;
      clearTimeout(restart.timer);
      this.#iceRestart = null;
      // lost with the socket: the server may have applied it or not, only a fresh start is sure
      this.#lost(`ICE restart refused: ${(e && (e.code || e.name)) || "error"}`);
    });
  }

  /** The server's side of our connection failed or was closed (removed after the grace
   * period, a server restart of the media...). Events about an older connection are ignored. */
  #onServerState(d) {
    if (!d || !d.connection_id || d.connection_id !== this.#connectionId) return;
    if (d.state === "failed" || d.state === "closed") this.#lost(`server connection ${d.state}`);
  }

  #lost(reason) {
    if (!this.#wanted || this.#link.ended) return;
    console.info("room media: restarting:", reason);
    this.restart(reason);
  }

  /** Start the media over: a new peer connection and rtc:join (what an ICE restart that did
   * not bring the media back falls back to), retried with a growing delay while in the room.
   * Without the socket it waits for the rejoin, which calls resync() and so this again. */
  restart(reason) {
    this.#down = true;
    this.fire("down", true);
    if (this.#restarting) return this.#restarting;
    this.#restarting = (async () => {
      let delay = 500;
      for (;;) {
        if (this.#link.ended || this.#link.status === "failed" || !this.#wanted) return;
        if (!this.#link.inRoom) {
          this.#stale = true;
          return;
        }
        try {
          this.#stale = false;
          await this.#connect();
          return;
        } catch (e) {
          if (e.code === "rtc_unavailable") {
            this.#available = false;
            this.stop();
            this.fire("rtc-error", e);
            return;
          }
          console.info("room media: restart failed:", reason, e.code || e.name, e.message);
          await sleep(delay);
          delay = Math.min(delay * 2, 4000);
        }
      }
    })().finally(() => (this.#restarting = null));
    return this.#restarting;
  }

  /** After a rejoin: the same participant whose server connection is still the one we hold
   * keeps its media (rtc:resync says whether an offer waits: we pull it); anything else
   * restarts. */
  async resync(sameParticipant) {
    if (!this.#wanted) return;
    if (this.#restarting) return; // it goes on now that we are back in the room
    const pc = this.#pc;
    if (!sameParticipant || this.#stale || !pc || pc.connectionState === "failed" || pc.connectionState === "closed") {
      return this.restart("rejoined");
    }
    let st;
    try {
      st = await this.#link.call("rtc:resync", {});
      if (pc !== this.#pc) return;
      if (st.connection_id !== this.#connectionId || st.state === "failed" || st.state === "closed") {
        return this.restart(`server connection ${st.state}`);
      }
    } catch (e) {
      if (pc === this.#pc) return this.restart(`resync: ${e.code}`);
      return;
    }
    if (st.renegotiate) this.#pull(pc);
    // the network changed under the socket and the media alike: the media's ICE path too
    const ice = pc.iceConnectionState;
    if (ice === "disconnected" || ice === "failed" || pc.connectionState === "failed") this.#recoverIce(pc, "rejoined");
  }

  /** Run `fn` after the negotiations already queued for `pc`, whatever their outcome: one
   * failed negotiation must not stall the ones after it. Nothing runs for a replaced pc. */
  #enqueue(pc, fn) {
    const run = this.#negotiating.catch(() => {}).then(() => (pc === this.#pc ? fn() : undefined));
    this.#negotiating = run.catch(() => {});
    return run;
  }

  /** Offer our current tracks to the server; one negotiation at a time. */
  #publish() {
    const pc = this.#pc;
    if (!pc) return Promise.resolve();
    return this.#enqueue(pc, () => this.#offerOnce(pc)).catch((e) => this.#negotiationFailed(pc, e, true));
  }

  /** Pull the server's offer and answer it, after the negotiations already queued; one
   * queued pull covers every rtc:renegotiate that comes before it starts. */
  #pull(pc) {
    if (this.#pullQueued) return this.#negotiating;
    this.#pullQueued = true;
    return this.#enqueue(pc, () => {
      this.#pullQueued = false;
      return this.#answerServer(pc);
    }).catch((e) => this.#negotiationFailed(pc, e, false));
  }

  #negotiationFailed(pc, e, ours) {
    if (pc !== this.#pc) return;
    if (e && e.code === "disconnected") {
      // Our offer may or may not have reached the server: only a fresh start is sure. A lost
      // answer is different: the server still waits for it and sends its offer again.
      if (ours) this.#stale = true;
      return;
    }
    if (e && e.code === "timeout") return this.#lost("negotiation timed out");
    console.warn("rtc:", e && (e.code || e.name), e && e.message);
    this.fire("rtc-error", e);
  }

  async #offerOnce(pc) {
    const offer = await pc.createOffer();
    this.#heldCandidates = this.#heldCandidates || [];
    await pc.setLocalDescription(offer);
    const sources = {};
    for (const tr of pc.getTransceivers()) {
      const track = tr.sender && tr.sender.track;
      if (!track || !tr.mid || tr.currentDirection === "stopped") continue;
      sources[tr.mid] = track.kind === "audio" ? "audio" : this.#sources[track.id] || "camera";
    }
    let ack;
    try {
      ack = await this.#link.call("rtc:offer", { sdp: pc.localDescription.sdp, type: "offer", sources });
    } catch (e) {
      if (pc === this.#pc) this.#flushCandidates();
      throw e;
    }
    if (pc !== this.#pc) return;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
    } finally {
      this.#flushCandidates();
    }
    if (ack.renegotiate) this.#pull(pc);
  }

  #flushCandidates() {
    const held = this.#heldCandidates || [];
    this.#heldCandidates = null;
    for (const c of held) this.#link.send("rtc:candidate", c);
  }

  #onRenegotiate(d) {
    if (!d || (d.connection_id && d.connection_id !== this.#connectionId)) {
      // For the connection being set up (its rtc:join answer is on the way): remember it.
      // Otherwise it is about a connection we dropped.
      if (d && this.#joining) this.#early = d.connection_id;
      return;
    }
    if (this.#pc) this.#pull(this.#pc);
  }

  /** One step of the queue: rtc:pull, then answer the offer (if the server had one). */
  async #answerServer(pc) {
    const { offer } = await this.#link.call("rtc:pull", {});
    if (!offer || pc !== this.#pc) return;
    // The latest offer's list labels every m-line (a line may carry another participant's
    // track after a renegotiation); set before applying it, so `ontrack` finds its label.
    const tracks = offer.tracks || [];
    this.#midInfo = new Map(tracks.map((tr) => [tr.mid, tr]));
    this.fire("tracks-map", tracks);
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (pc !== this.#pc) return;
    const ack = await this.#link.call("rtc:answer", { sdp: pc.localDescription.sdp, type: "answer" });
    // Tracks whose m-line was just (re)labelled: tell the page again.
    for (const tr of pc.getTransceivers()) {
      const meta = this.#midInfo.get(tr.mid);
      if (meta && tr.receiver && tr.receiver.track && tr.currentDirection !== "inactive" && tr.currentDirection !== "stopped") {
        this.fire("track", { track: tr.receiver.track, mid: tr.mid, ...meta });
      }
    }
    this.fire("answered", pc);
    if (ack && ack.renegotiate) this.#pull(pc);
  }

  async replaceTrack(kind, track) {
    const old = this.#localTracks.find((tr) => tr.kind === kind);
    this.#localTracks = [...this.#localTracks.filter((tr) => tr.kind !== kind), track];
    this.#sources[track.id] = "camera";
    if (!this.#pc) return;
    const sender = this.#pc.getSenders().find((s) => s.track && (s.track === old || (s.track.kind === kind && this.#sources[s.track.id] !== "screen")));
    if (sender) await sender.replaceTrack(track);
  }

  async startScreen(track, stream) {
    this.#screen = { track, stream };
    this.#sources[track.id] = "screen";
    if (!this.#pc) return;
    const reused = this.#screenTransceiver;
    if (reused) {
      // The m-line of an earlier share on this connection, idle: it carries the new one.
      await reused.sender.replaceTrack(track);
      if (reused.sender.setStreams) reused.sender.setStreams(stream);
      reused.direction = "sendonly";
    } else {
      this.#screenTransceiver = this.#pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
    await this.#publish();
  }

  /** The share's m-line is made idle ("inactive", no track) and the next share reuses it.
   * Stopping the transceiver would work too since the server accepts rejected m-lines
   * (docs/rtc.md); before it did, the answer broke the connection (issue 11 item 6). */
  async stopScreen() {
    this.#screen = null;
    const transceiver = this.#screenTransceiver;
    if (!this.#pc || !transceiver || transceiver.direction === "inactive") return;
    try {
      await transceiver.sender.replaceTrack(null);
      transceiver.direction = "inactive";
    } catch {
      /* the connection closed meanwhile */
    }
    await this.#publish();
  }

  /** participant:update {audio?, video?, screen?}, remembered: a media restart publishes the
   * tracks again (which the server reflects in presence), then says again what is on. */
  setMediaState(changes) {
    Object.assign(this.#mediaState, changes);
    return this.#link.call("participant:update", changes);
  }

  /** A host muted us (room:muted): the server turned the microphone off, and a media
   * restart must not say it is on again. */
  mutedByHost() {
    this.#mediaState.audio = false;
  }

  #resendMediaState() {
    const state = { ...this.#mediaState };
    if (!Object.keys(state).length) return;
    this.#link.call("participant:update", state).catch((e) => {
      if (e.code !== "muted_by_host") return;
      delete state.audio; // a host muted us meanwhile: the rest still holds
      this.#link.call("participant:update", state).catch(() => {});
    });
  }
}

/** Simulcast layers of the camera: a quarter, half and full resolution, told apart by RID
 * (the SFU forwards to each viewer the one that fits its tile and its link). Exported for
 * tests. Screen shares and audio go as one encoding. */
export const CAMERA_LAYERS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

function publishInit(track, stream) {
  const init = { direction: "sendonly", streams: [stream] };
  if (track.kind === "video") init.sendEncodings = CAMERA_LAYERS.map((l) => ({ ...l }));
  return init;
}
