// Which remote video tiles the user can see, from the DOM (pause-sync.js acts on it; tiles
// are named by tiles.js's key). The room pauses the video of a
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
  #onChange;
  #hideDelay;
  #tiles;
  #io;
  #refresh;

  #onResize;
  #ro;

  /** onChange(key, visible) is called when a tile's settled visibility changes;
   * onResize(key, width, height) with a tile's rendered size in device pixels (the SFU
   * sends a simulcast camera's layer that fits it: rtc:layout). */
  constructor(onChange, { hideDelay = 1500, onResize = null } = {}) {
    this.#onChange = onChange;
    this.#onResize = onResize;
    this.#ro =
      onResize && typeof ResizeObserver === "function"
        ? new ResizeObserver((entries) => this.#resized(entries))
        : null;
    this.#hideDelay = hideDelay;
    this.#tiles = new Map(); // key -> {el, intersecting, reported: true|false|undefined, timer}
    this.#io =
      typeof IntersectionObserver === "function"
        ? new IntersectionObserver((entries) => this.#intersections(entries), { threshold: 0 })
        : null;
    this.#refresh = () => this.#updateAll();
    document.addEventListener("visibilitychange", this.#refresh);
    // Picture-in-Picture events are fired at the <video>; capture them on the document.
    document.addEventListener("enterpictureinpicture", this.#refresh, true);
    document.addEventListener("leavepictureinpicture", this.#refresh, true);
  }

  /** Watch the tile element of `key`; returns the function that stops watching it. A tile
   * moved to another place in the page (grid ↔ featured view) is a new element under the
   * same key: it replaces the old one and keeps the reported state. */
  observe(key, el) {
    const old = this.#tiles.get(key);
    if (old && old.el !== el && this.#io) this.#io.unobserve(old.el);
    const tile = old || { reported: undefined, timer: null };
    tile.el = el;
    tile.intersecting = !this.#io; // without IntersectionObserver, on screen until told otherwise
    this.#tiles.set(key, tile);
    if (this.#io) this.#io.observe(el);
    else this.#update(key);
    if (this.#ro) {
      if (old && old.el !== el) this.#ro.unobserve(old.el);
      this.#ro.observe(el);
    }
    return () => this.unobserve(key, el);
  }

  unobserve(key, el) {
    const tile = this.#tiles.get(key);
    if (!tile || tile.el !== el) return; // already replaced by the tile's new element
    if (this.#io) this.#io.unobserve(el);
    if (this.#ro) this.#ro.unobserve(el);
    clearTimeout(tile.timer);
    this.#tiles.delete(key);
  }

  /** The settled state: false only once a tile has been reported hidden. */
  visible(key) {
    const tile = this.#tiles.get(key);
    return !tile || tile.reported !== false;
  }

  hiddenKeys() {
    return [...this.#tiles].filter(([, tile]) => tile.reported === false).map(([key]) => key);
  }

  #intersections(entries) {
    for (const entry of entries) {
      for (const [key, tile] of this.#tiles) {
        if (tile.el === entry.target) {
          tile.intersecting = entry.isIntersecting;
          this.#update(key);
        }
      }
    }
  }

  #resized(entries) {
    const dpr = window.devicePixelRatio || 1;
    for (const entry of entries) {
      for (const [key, tile] of this.#tiles) {
        if (tile.el !== entry.target) continue;
        const box = entry.contentRect;
        this.#onResize(key, Math.round(box.width * dpr), Math.round(box.height * dpr));
      }
    }
  }

  /** What the user can see right now (before the debounce). */
  #seen(tile) {
    const pip = document.pictureInPictureElement;
    if (pip && tile.el.contains(pip)) return true;
    if (document.visibilityState === "hidden") return false;
    return tile.intersecting;
  }

  #update(key) {
    const tile = this.#tiles.get(key);
    if (!tile) return;
    const seen = this.#seen(tile);
    if (seen) {
      clearTimeout(tile.timer);
      tile.timer = null;
      if (tile.reported !== true) {
        tile.reported = true;
        this.#onChange(key, true);
      }
      return;
    }
    if (tile.reported === false || tile.timer) return;
    tile.timer = setTimeout(() => {
      tile.timer = null;
      if (this.#tiles.get(key) === tile && !this.#seen(tile) && tile.reported !== false) {
        tile.reported = false;
        this.#onChange(key, false);
      }
    }, this.#hideDelay);
  }

  #updateAll() {
    for (const key of this.#tiles.keys()) this.#update(key);
  }

  destroy() {
    if (this.#io) this.#io.disconnect();
    if (this.#ro) this.#ro.disconnect();
    for (const tile of this.#tiles.values()) clearTimeout(tile.timer);
    this.#tiles.clear();
    document.removeEventListener("visibilitychange", this.#refresh);
    document.removeEventListener("enterpictureinpicture", this.#refresh, true);
    document.removeEventListener("leavepictureinpicture", this.#refresh, true);
  }
}
