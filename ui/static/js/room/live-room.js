// The room's live socket, without any UI: one Socket.IO connection (presence, lobby,
// moderation, chat, rtc:* signalling) kept up through network trouble: the socket reconnects
// and joins the room again, and the connection status says what the page should show.
// The media does not ride on it (media-session.js); what the socket's life means for the
// media goes through the `media` port given at construction (room-client.js wires it).
//
// Public surface: on(event, fn), call(event, data, timeout), send(event, data), connect(),
// join(), leave(), close(), retry(), updateStatus(), chatSince(page, known), and read-only
// status, inRoom, ended, joinedOnce, participantId.
//
// Events: the server's own (SERVER_EVENTS), "connected", "disconnected", "connect_error",
// "connection" {status: connected|reconnecting|failed, was, downFor}, "rejoined" (the
// room:join acknowledgement after a reconnect), "rejoin-failed" (error), "refused" (the
// server would not take the connection: session ended).
import { io } from "../../vendor/socket.io.mjs";
import { LiveError } from "./common.js";
import { Emitter } from "./emitter.js";

const SERVER_EVENTS = [
  "participant:joined", "participant:updated", "participant:left",
  "lobby:arrived", "lobby:left", "lobby:admitted", "lobby:refused",
  "room:muted", "room:unmute_requested", "room:removed", "room:ended", "room:replaced", "room:updated",
  "rcp:current", "rcp:item_signed",
  "session:ended", "chat:message", "chat:typing",
  "rtc:renegotiate", "rtc:moved", "rtc:candidate", "rtc:tracks", "rtc:screen", "rtc:speaker", "rtc:stats", "rtc:state",
];
/** The server announces these before it closes the connection on purpose: no reconnect. */
const FINAL_EVENTS = ["room:removed", "room:ended", "room:replaced", "lobby:refused", "session:ended"];
/** room:join refusals on a reconnect that end the stay (the page says why). */
const FINAL_JOIN_ERRORS = new Set(["removed", "room_closed", "room_not_found", "room_locked", "room_full"]);

/** After this long without getting back, stop trying and let the user retry (a test may
 * shorten it with `window.CONSILIUM_GIVE_UP_MS` before the page loads). */
export const GIVE_UP_MS = Number(globalThis.CONSILIUM_GIVE_UP_MS) || 60000;

/** What the live socket asks of the media (all optional: no media by default). */
const NO_MEDIA = {
  /** The media connection is being restored (part of "reconnecting"). */
  down: () => false,
  /** The stay is over (closed, refused, a final refusal on rejoin): drop the media. */
  end: () => {},
  /** Back in the room after a reconnect (awaited while "reconnecting"): `ack` is room:join's
   * answer, `sameParticipant` whether the server resumed the participant we were. */
  rejoined: async () => {},
  /** "Réessayer" with the socket up: restart the media if it is wanted; true if it did. */
  retry: () => false,
};

export class LiveRoom extends Emitter {
  #roomId;
  #media;
  #socket;
  #participantId = null;
  #joinedOnce = false; // room:join answered "joined" at least once
  #inRoom = false; // ... on the current socket
  #rejoining = false; // a new socket is joining the room again
  #final = false; // removed, room ended, replaced, refused, session over: never reconnect
  #closed = false;
  #draining = false; // the server said it is stopping: reconnect at once
  #status = "connecting"; // then connected | reconnecting | failed
  #giveUpAfter;
  #lostAt = null; // performance.now() when the trouble began
  #giveUpTimer = null;

  constructor(roomId, { giveUpAfter = GIVE_UP_MS, media = {} } = {}) {
    super();
    this.#roomId = roomId;
    this.#giveUpAfter = giveUpAfter;
    this.#media = { ...NO_MEDIA, ...media };
    this.#socket = io({
      path: "/socket.io",
      transports: ["websocket"], // one TCP connection, so one worker (docs/deployment.md)
      withCredentials: true,
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 4000,
    });
    for (const name of FINAL_EVENTS) this.#socket.on(name, () => (this.#final = true));
    for (const name of SERVER_EVENTS) this.#socket.on(name, (data) => this.fire(name, data));
    // The server lost live messages (its Redis fan-out came back): join again, which brings
    // the participants and the chat history (merged by id) up to date.
    this.#socket.on("room:resync", () => this.#resync());
    this.#socket.on("live:resync", () => this.#resync()); // another node lost messages for us
    // The node is stopping: it disconnects us next; reconnect (elsewhere) without waiting.
    this.#socket.on("server:draining", () => (this.#draining = true));
    this.#socket.on("connect", () => this.#onConnect());
    this.#socket.on("disconnect", (reason) => this.#onDisconnect(reason));
    this.#socket.on("connect_error", (err) => this.#onConnectError(err));
  }

  /** connecting | connected | reconnecting | failed */
  get status() {
    return this.#status;
  }

  /** Joined the room on the current socket. */
  get inRoom() {
    return this.#inRoom;
  }

  /** Closed, or ended by the server: the socket never reconnects. */
  get ended() {
    return this.#closed || this.#final;
  }

  /** room:join answered "joined" at least once (later joins are rejoins). */
  get joinedOnce() {
    return this.#joinedOnce;
  }

  get participantId() {
    return this.#participantId;
  }

  connect() {
    this.#socket.connect();
  }

  /** Emit with acknowledgement; resolves the ack, rejects LiveError on {ok:false}. Nothing is
   * queued while disconnected (socket.io would send it before the next room:join, where it
   * would be refused): the call fails at once with code "disconnected". */
  call(event, data = {}, timeout = 10000) {
    const socket = this.#socket;
    return new Promise((resolve, reject) => {
      if (!socket.connected) return reject(new LiveError({ code: "disconnected", message: `${event}: not connected` }));
      socket.timeout(timeout).emit(event, data, (err, ack) => {
        if (err) return reject(new LiveError({ code: socket.connected ? "timeout" : "disconnected", message: `${event}: no answer` }));
        if (!ack || ack.ok === false) return reject(new LiveError(ack && ack.error));
        resolve(ack);
      });
    });
  }

  /** Emit without waiting, only while in the room (an ICE candidate: without the socket it
   * is lost, and ICE completes with the others or the media is started again). */
  send(event, data) {
    if (this.#socket.connected && this.#inRoom) this.#socket.emit(event, data, () => {});
  }

  async join() {
    const ack = await this.call("room:join", { room_id: this.#roomId });
    if (ack.status === "joined") {
      this.#inRoom = true;
      this.#joinedOnce = true;
      this.#participantId = ack.participant_id;
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
    this.#closed = true;
    clearTimeout(this.#giveUpTimer);
    this.#media.end();
    this.#socket.disconnect();
  }

  // --- staying connected -------------------------------------------------------------------

  #onConnect() {
    this.fire("connected");
    if (this.#joinedOnce) {
      this.#rejoining = true;
      this.#rejoin().finally(() => {
        this.#rejoining = false;
        this.updateStatus();
      });
    }
  }

  #resync() {
    if (!this.#inRoom || this.#rejoining) return;
    this.#rejoining = true;
    this.#rejoin().finally(() => {
      this.#rejoining = false;
      this.updateStatus();
    });
  }

  #onDisconnect(reason) {
    this.#inRoom = false;
    const delay = this.#draining ? 50 + Math.random() * 250 : 500;
    this.#draining = false;
    this.fire("disconnected", reason);
    if (this.ended) return;
    if (reason === "io server disconnect") {
      // The server closed this connection without a word (a removal, the end of the room,
      // another tab and a finished session announce themselves first): socket.io reconnects
      // by itself only after a network failure, so connect again.
      setTimeout(() => !this.ended && !this.#socket.connected && this.#status !== "failed" && this.#socket.connect(), delay);
    }
    this.updateStatus();
  }

  #onConnectError(err) {
    // The server refusing the connection (its session ended: signed out, expired, a removed
    // guest) ends socket.io's attempts (the socket is no longer active); a network error
    // does not.
    if (!this.#socket.active && !this.#closed && err && err.data && err.data.retry_after) {
      // a service behind the server is down for a moment (database, Redis): try again
      setTimeout(() => !this.ended && !this.#socket.connected && this.#socket.connect(), err.data.retry_after * 1000);
      this.fire("connect_error", err);
      this.updateStatus();
      return;
    }
    if (!this.#socket.active && !this.#closed) {
      this.#final = true;
      this.#media.end();
      this.fire("refused", err);
      return;
    }
    this.fire("connect_error", err);
    this.updateStatus();
  }

  /** Back on a new socket: the same room:join (the server's grace period keeps the same
   * participant), then the media (the port decides: kept, restarted or stopped). */
  async #rejoin() {
    const before = this.#participantId;
    let ack;
    try {
      ack = await this.join();
    } catch (e) {
      if (FINAL_JOIN_ERRORS.has(e.code)) {
        this.#final = true;
        this.#media.end();
        this.#socket.disconnect();
        this.fire("rejoin-failed", e);
        return;
      }
      // the server is there but did not answer (restarting?): drop this socket, socket.io
      // connects again (and we join again) after its back-off
      if (this.#socket.connected) this.#socket.io.engine.close();
      return;
    }
    this.fire("rejoined", ack);
    await this.#media.rejoined(ack, this.#participantId === before);
  }

  /** What the page shows: "reconnecting" while the socket or the media is being restored,
   * "failed" once we gave up (until retry()), "connected" otherwise. Called again by the
   * wiring when the media's `down()` changes. */
  updateStatus() {
    if (this.ended) return;
    const trouble = (this.#joinedOnce && (!this.#socket.connected || this.#rejoining)) || this.#media.down();
    if (!this.#joinedOnce && !trouble) return; // the first connection: the page's own screen
    if (this.#status === "failed" && trouble) return;
    this.#setStatus(trouble ? "reconnecting" : "connected");
  }

  #setStatus(next) {
    if (next === this.#status) return;
    const was = this.#status;
    this.#status = next;
    let downFor = null;
    if (next === "reconnecting") {
      if (this.#lostAt === null) this.#lostAt = performance.now();
      if (!this.#giveUpTimer) this.#giveUpTimer = setTimeout(() => this.#giveUp(), this.#giveUpAfter);
    } else {
      clearTimeout(this.#giveUpTimer);
      this.#giveUpTimer = null;
      if (next === "connected" && this.#lostAt !== null) {
        downFor = performance.now() - this.#lostAt;
        this.#lostAt = null;
      }
    }
    this.fire("connection", { status: next, was, downFor });
  }

  #giveUp() {
    this.#giveUpTimer = null;
    if (this.#status !== "reconnecting") return;
    this.#setStatus("failed");
    // No more attempts in the background: the page says so and offers to retry.
    if (!this.#socket.connected) this.#socket.disconnect();
  }

  /** "Réessayer": start over (socket, then media) with a new time limit. */
  retry() {
    if (this.ended) return;
    this.#status = "reconnecting"; // from failed, without a second "lost" moment
    this.fire("connection", { status: "reconnecting", was: "failed", downFor: null });
    this.#giveUpTimer = setTimeout(() => this.#giveUp(), this.#giveUpAfter);
    if (!this.#socket.connected) this.#socket.connect();
    else if (!this.#media.retry()) this.updateStatus();
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
