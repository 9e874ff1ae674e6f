// Pausing, on the server, the remote videos nobody sees: rtc:pause {track_id} for the video
// of a hidden tile (the SFU stops sending it), rtc:resume for a visible one (the SFU starts
// again from a fresh keyframe). Which tiles are hidden comes from the VisibilityTracker
// (visibility.js); which track ids the server sends, from its latest offer. No DOM.
//
// Tile sizes (device pixels) go to the server as rtc:layout {tiles: [{track_id, width,
// height}]}: a simulcast camera is then sent in the layer that fits the tile.
//
// Public surface: setHidden(key, hidden), setSize(key, width, height), setTracks(tracks),
// reset(), sync().
import { trackTileKey } from "./tiles.js";

export class PauseSync {
  #call;
  #ready;
  #hidden = new Set(); // tile keys (tiles.js) of hidden tiles
  #tracks = []; // the latest server offer's tracks, one per m-line
  #paused = new Map(); // track_id → paused on the server, as far as we know
  #epoch = 0; // bumped by reset(): a pause sent for the previous connection is not recorded
  #syncing = false;
  #again = false;
  #sizes = new Map(); // tile key → [width, height] in device pixels
  #sent = new Map(); // track_id → "WxH" last sent with rtc:layout
  #layoutTimer = null;

  /** `call(event, data)` sends with acknowledgement (LiveRoom.call); `ready()` says whether
   * there is a media connection, in the room, to pause tracks on. */
  constructor({ call, ready }) {
    this.#call = call;
    this.#ready = ready;
  }

  /** The tile `key` is hidden (or visible again). */
  setHidden(key, hidden) {
    if (hidden) this.#hidden.add(key);
    else this.#hidden.delete(key);
    return this.sync();
  }

  /** The tile `key` is rendered at width × height device pixels. */
  setSize(key, width, height) {
    this.#sizes.set(key, [width, height]);
    clearTimeout(this.#layoutTimer);
    this.#layoutTimer = setTimeout(() => this.sendLayout(), 150); // one call per resize burst
  }

  /** rtc:layout for the video tracks whose tile size changed since last sent. */
  async sendLayout() {
    if (!this.#ready()) return;
    const tiles = [];
    for (const info of this.#tracks) {
      if (info.kind !== "video" || !info.track_id) continue;
      const size = this.#sizes.get(trackTileKey(info));
      if (!size || !size[0] || !size[1]) continue;
      const text = `${size[0]}x${size[1]}`;
      if (this.#sent.get(info.track_id) === text) continue;
      tiles.push({ track_id: info.track_id, width: size[0], height: size[1] });
      this.#sent.set(info.track_id, text);
    }
    if (!tiles.length) return;
    try {
      await this.#call("rtc:layout", { tiles });
    } catch {
      for (const tile of tiles) this.#sent.delete(tile.track_id); // sent again next time
    }
  }

  /** A server offer's list of what it sends (each video's `paused` as the server has it). */
  setTracks(tracks) {
    this.#tracks = [...new Map(tracks.map((tr) => [tr.mid, tr])).values()];
    this.#paused = new Map(tracks.filter((tr) => tr.kind === "video").map((tr) => [tr.track_id, !!tr.paused]));
  }

  /** The media connection was closed: its tracks are gone (a new one starts unpaused). */
  reset() {
    this.#tracks = [];
    this.#paused = new Map();
    this.#sent = new Map();
    this.#epoch++;
  }

  /** Bring the server's paused tracks in line with the hidden tiles: rtc:pause for a hidden
   * tile's video, rtc:resume for a visible one. Audio is never paused. Run after each change,
   * each server offer (new track ids) and each new connection (the server's new
   * subscriptions start unpaused). */
  async sync() {
    if (this.#syncing) {
      this.#again = true;
      return;
    }
    this.#syncing = true;
    try {
      do {
        this.#again = false;
        const epoch = this.#epoch;
        if (!this.#ready()) return;
        for (const info of [...this.#tracks]) {
          if (info.kind !== "video" || !info.track_id) continue;
          const want = this.#hidden.has(trackTileKey(info));
          if ((this.#paused.get(info.track_id) || false) === want) continue;
          try {
            await this.#call(want ? "rtc:pause" : "rtc:resume", { track_id: info.track_id });
          } catch (e) {
            if (e.code !== "unknown_track") return; // the socket is gone: done again on rejoin
          }
          if (epoch !== this.#epoch) break;
          this.#paused.set(info.track_id, want);
        }
      } while (this.#again);
      await this.sendLayout(); // new track ids (server offer, new connection) get their size
    } finally {
      this.#syncing = false;
    }
  }
}
