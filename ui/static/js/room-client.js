// The live side of a room, without any UI: the Socket.IO connection (presence, lobby,
// moderation, chat) and the one RTCPeerConnection with the SFU (rtc:* signalling).
// Pages subscribe with `client.on(event, fn)`; every client event is acknowledged {ok, error?}.
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
  "chat:message", "chat:typing",
  "rtc:offer", "rtc:candidate", "rtc:tracks", "rtc:screen", "rtc:speaker", "rtc:stats", "rtc:state",
];

export class RoomClient {
  constructor(roomId) {
    this.roomId = roomId;
    this.handlers = new Map();
    this.pc = null;
    this.midInfo = new Map(); // server m-line mid → {participant_id, source, kind, track_id}
    this.negotiating = Promise.resolve();
    this.heldCandidates = null; // our ICE candidates while our offer is with the server
    this.wantOffer = false; // an offer of ours was rolled back (glare): offer again once stable
    this.sources = {}; // local MediaStreamTrack id → "camera" | "screen"
    this.rtcAvailable = true;
    this.socket = io({ path: "/socket.io", transports: ["websocket", "polling"], withCredentials: true, autoConnect: false });
    for (const name of SERVER_EVENTS) this.socket.on(name, (data) => this.fire(name, data));
    this.socket.on("connect", () => this.fire("connected"));
    this.socket.on("disconnect", (reason) => this.fire("disconnected", reason));
    this.socket.on("connect_error", (err) => this.fire("connect_error", err));
    this.on("rtc:offer", (offer) => this.onServerOffer(offer));
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

  /** Emit with acknowledgement; resolves the ack, rejects LiveError on {ok:false}. */
  call(event, data = {}, timeout = 10000) {
    return new Promise((resolve, reject) => {
      this.socket.timeout(timeout).emit(event, data, (err, ack) => {
        if (err) return reject(new LiveError({ code: "timeout", message: `${event}: no answer` }));
        if (!ack || ack.ok === false) return reject(new LiveError(ack && ack.error));
        resolve(ack);
      });
    });
  }

  join() {
    return this.call("room:join", { room_id: this.roomId });
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
    if (this.pc) this.pc.close();
    this.pc = null;
    this.socket.disconnect();
  }

  // --- media with the SFU ----------------------------------------------------------------

  /** Open the peer connection and publish `stream` (camera and microphone). */
  async startMedia(stream) {
    let info;
    try {
      info = await this.call("rtc:join", {});
    } catch (e) {
      this.rtcAvailable = false;
      throw e;
    }
    this.pc = new RTCPeerConnection({ iceServers: info.ice_servers || [], bundlePolicy: "max-bundle" });
    this.pc.onicecandidate = (e) => {
      // Trickled one by one (the server's own candidates are in its SDP).
      // Fields as the browser names them: {candidate, sdpMid, sdpMLineIndex, usernameFragment}.
      // Held back while our offer is with the server: it drops candidates that arrive before
      // it has applied the offer.
      if (!e.candidate) return;
      if (this.heldCandidates) this.heldCandidates.push(e.candidate.toJSON());
      else this.socket.emit("rtc:candidate", e.candidate.toJSON(), () => {});
    };
    this.pc.ontrack = (e) => {
      const mid = e.transceiver && e.transceiver.mid;
      const meta = this.midInfo.get(mid) || {};
      this.fire("track", { track: e.track, mid, ...meta });
    };
    this.pc.addEventListener("connectionstatechange", () => this.fire("pc-state", this.pc && this.pc.connectionState));
    // Others already publish: the server offers them right after the join. Answer that offer
    // before offering ours, so that the two never cross (the server cannot roll back).
    if ((info.tracks || []).length) {
      await new Promise((resolve) => {
        const timer = setTimeout(() => (off(), resolve()), 3000);
        const off = this.on("rtc:answered", () => (clearTimeout(timer), off(), resolve()));
      });
    }
    for (const track of stream.getTracks()) {
      this.sources[track.id] = "camera";
      this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
    await this.publish();
    return info;
  }

  /** Run `fn` after the negotiations already queued, whatever their outcome: one failed
   * negotiation must not stall the ones after it. */
  enqueue(fn) {
    const run = this.negotiating.catch(() => {}).then(fn);
    this.negotiating = run.catch(() => {});
    return run;
  }

  /** Offer our current tracks to the server; one negotiation at a time. */
  publish() {
    return this.enqueue(() => this.offerOnce()).catch((e) => this.fire("rtc-error", e));
  }

  async offerOnce() {
    if (!this.pc) return;
    this.wantOffer = false;
    if (this.pc.signalingState !== "stable") {
      this.wantOffer = true;
      return;
    }
    const offer = await this.pc.createOffer();
    this.heldCandidates = this.heldCandidates || [];
    await this.pc.setLocalDescription(offer);
    const sources = {};
    for (const tr of this.pc.getTransceivers()) {
      const track = tr.sender && tr.sender.track;
      if (!track || !tr.mid || tr.currentDirection === "stopped") continue;
      sources[tr.mid] = track.kind === "audio" ? "audio" : this.sources[track.id] || "camera";
    }
    let ack;
    try {
      ack = await this.call("rtc:offer", { sdp: this.pc.localDescription.sdp, type: "offer", sources });
    } catch (e) {
      this.flushCandidates();
      if (e.code !== "glare" || !this.pc) throw e;
      // The server (impolite: aiortc cannot roll back) has an offer of its own in flight: we
      // are the polite side, so take ours back, answer theirs (queued after us), then offer
      // again. Should their offer not come, offer again anyway.
      await this.pc.setLocalDescription({ type: "rollback" });
      this.wantOffer = true;
      setTimeout(() => this.wantOffer && this.publish(), 1500);
      return;
    }
    try {
      if (this.pc) await this.pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
    } finally {
      this.flushCandidates();
    }
  }

  flushCandidates() {
    const held = this.heldCandidates || [];
    this.heldCandidates = null;
    for (const c of held) this.socket.emit("rtc:candidate", c, () => {});
  }

  onServerOffer(offer) {
    this.enqueue(async () => {
      if (!this.pc) return;
      // The latest offer's list labels every m-line (a line may carry another participant's
      // track after a renegotiation); set before applying it, so `ontrack` finds its label.
      this.midInfo = new Map((offer.tracks || []).map((tr) => [tr.mid, tr]));
      this.fire("tracks-map", offer.tracks || []);
      if (this.pc.signalingState !== "stable") {
        await this.pc.setLocalDescription({ type: "rollback" });
        this.wantOffer = true;
      }
      await this.pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      await this.call("rtc:answer", { sdp: this.pc.localDescription.sdp, type: "answer" });
      // Tracks whose m-line was just (re)labelled: tell the page again.
      for (const tr of this.pc.getTransceivers()) {
        const meta = this.midInfo.get(tr.mid);
        if (meta && tr.receiver && tr.receiver.track && tr.currentDirection !== "inactive" && tr.currentDirection !== "stopped") {
          this.fire("track", { track: tr.receiver.track, mid: tr.mid, ...meta });
        }
      }
      this.fire("rtc:answered");
      if (this.wantOffer) this.publish();
    }).catch((e) => this.fire("rtc-error", e));
  }

  async replaceTrack(kind, track) {
    if (!this.pc) return;
    const sender = this.pc.getSenders().find((s) => s.track && s.track.kind === kind && this.sources[s.track.id] !== "screen");
    if (sender) {
      this.sources[track.id] = "camera";
      await sender.replaceTrack(track);
    }
  }

  async startScreen(track, stream) {
    if (!this.pc) return;
    this.sources[track.id] = "screen";
    this.screenTransceiver = this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    await this.publish();
  }

  async stopScreen() {
    if (!this.pc || !this.screenTransceiver) return;
    try {
      this.screenTransceiver.stop();
    } catch {
      /* already stopped */
    }
    this.screenTransceiver = null;
    await this.publish();
  }
}
