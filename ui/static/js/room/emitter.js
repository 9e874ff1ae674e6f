// Events for the room's modules: `on(name, fn)` returns the function that unsubscribes; a
// handler that throws is logged and does not stop the others.

export class Emitter {
  #handlers = new Map(); // event → Set(fn)

  on(name, fn) {
    if (!this.#handlers.has(name)) this.#handlers.set(name, new Set());
    this.#handlers.get(name).add(fn);
    return () => this.#handlers.get(name).delete(fn);
  }

  /** For the module itself (and its wiring in room-client.js), not for pages. */
  fire(name, data) {
    (this.#handlers.get(name) || []).forEach((fn) => {
      try {
        fn(data);
      } catch (e) {
        console.error(name, e);
      }
    });
  }
}
