// The dossier page's upload engine (no UI): a queue that sends files one after another.
//
// - Files up to RESUMABLE_ABOVE go in one multipart request (POST …/documents).
// - Larger files go with tus-js-client, the tus project's client, over the server's tus 1.0
//   resource (docs/documents.md, "tus 1.0"): SHA-256 computed off the page's thread
//   (hash-worker.js) and announced in the metadata → POST …/tus → PATCH chunk by chunk; the
//   last chunk completes the upload (the server checks size, checksum and content) and names
//   the document. A cut chunk or a 5xx is retried by tus-js-client (HEAD, then the rest);
//   beyond its retries the queue waits (backoff with jitter, or until the browser is back
//   online) and starts it again from the server's offset. The upload's URL is remembered in
//   localStorage under the user, dossier, file size, date and name: after a reload, picking
//   the same file again continues from the server's offset instead of starting over.
//
// The page reads `queue.items` (plain objects) whenever `onChange` fires, and passes an item
// (or a copy of it, or its `key`) back to pause / resume / cancel / retryNow / dismiss.
import "../vendor/tus.min.js"; // sets window.tus (UMD build of tus-js-client)
import { ApiError, csrfToken } from "./api.js";

const tus = window.tus;

const BASE = "/api/v1";
export const RESUMABLE_ABOVE = 8 * 1024 * 1024;
const CHUNK_MAX = 8 * 1024 * 1024;
const STORE = "consilium.upload.v1";
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const MAX_FAILURES = 10; // in a row, without a byte accepted in between
// tus-js-client's retries inside one attempt (a cut chunk, a 5xx, 409/423 from a race);
// beyond them the queue waits with its own backoff (BACKOFF_MS) or until the browser is online.
const TUS_RETRY_MS = [0, 1000, 3000, 5000];
const SPEED_WINDOW_MS = 8000;

/** States during which the item holds the queue. */
export const ACTIVE = new Set(["hashing", "starting", "uploading", "waiting", "completing"]);

/** The user paused or cancelled, or the page is going away. */
class Stopped extends Error {
  constructor() {
    super("stopped");
    this.name = "Stopped";
  }
}

/** Worth another attempt (network, server overloaded), as opposed to a refusal. */
export const retryable = (err) => err instanceof ApiError && (err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500);
const gone = (err) => err instanceof ApiError && (err.status === 404 || err.status === 410);

/** tus-js-client's DetailedError as the ApiError the page explains (problem+json detail). */
function tusError(err) {
  const res = err && err.originalResponse;
  if (!res) return new ApiError(0, { code: "network_error", detail: String((err && err.message) || err) });
  let body = null;
  try {
    body = JSON.parse(res.getBody() || "null");
  } catch {
    body = null;
  }
  return new ApiError(res.getStatus(), body || { detail: `HTTP ${res.getStatus()}` });
}

/** One HTTP exchange through XMLHttpRequest (fetch has no upload progress). */
function send({ method, path, headers = {}, body, onProgress, signal }) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) {
      reject(new Stopped());
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open(method, BASE + path);
    xhr.setRequestHeader("Accept", "application/json");
    const token = csrfToken();
    if (token && method !== "GET" && method !== "HEAD") xhr.setRequestHeader("X-CSRF-Token", token);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    if (onProgress) xhr.upload.onprogress = (e) => onProgress(e.loaded);
    const onAbort = () => xhr.abort();
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
    const settle = () => signal && signal.removeEventListener("abort", onAbort);
    xhr.onload = () => {
      settle();
      let data = null;
      if ((xhr.getResponseHeader("Content-Type") || "").includes("json")) {
        try {
          data = JSON.parse(xhr.responseText);
        } catch {
          data = null;
        }
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve({ data, header: (name) => xhr.getResponseHeader(name) });
      else reject(new ApiError(xhr.status, data || { detail: xhr.statusText }));
    };
    xhr.onerror = () => {
      settle();
      reject(new ApiError(0, { code: "network_error" }));
    };
    xhr.onabort = () => {
      settle();
      reject(new Stopped());
    };
    xhr.send(body === undefined ? null : body);
  });
}

/** SHA-256 of a file in a worker; "" when workers are unavailable (the server still checks
 * size and content, only the end-to-end checksum is lost). */
export function hashFile(file, onProgress, signal) {
  return new Promise((resolve, reject) => {
    let worker;
    try {
      worker = new Worker(new URL("./hash-worker.js", import.meta.url), { type: "module" });
    } catch (err) {
      console.warn("SHA-256 worker unavailable", err);
      resolve("");
      return;
    }
    const stop = () => {
      worker.terminate();
      reject(new Stopped());
    };
    const finish = (value) => {
      signal.removeEventListener("abort", stop);
      worker.terminate();
      resolve(value);
    };
    signal.addEventListener("abort", stop, { once: true });
    worker.onmessage = (e) => {
      const m = e.data;
      if (m.progress !== undefined) onProgress(m.progress);
      else finish(m.sha256 || "");
    };
    worker.onerror = (e) => {
      e.preventDefault();
      console.warn("SHA-256 worker failed", e.message);
      finish("");
    };
    worker.postMessage({ file });
  });
}

// -- what survives a reload ----------------------------------------------------------------

const prefix = (owner, dossierId) => `${STORE}:${owner || "-"}:${dossierId}:`;
const keyOf = (owner, dossierId, file) => `${prefix(owner, dossierId)}${file.size}:${file.lastModified}:${file.name}`;

function readRecord(key) {
  try {
    const rec = JSON.parse(localStorage.getItem(key) || "null");
    if (rec && rec.expiresAt && Date.parse(rec.expiresAt) < Date.now()) {
      localStorage.removeItem(key);
      return null;
    }
    return rec;
  } catch {
    return null;
  }
}

/** Uploads of this dossier left unfinished in this browser (e.g. before a reload). */
export function pendingUploads(owner, dossierId) {
  const p = prefix(owner, dossierId);
  const out = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (key && key.startsWith(p)) {
      const rec = readRecord(key);
      if (rec) out.push({ ...rec, key });
    }
  }
  return out.sort((a, b) => (a.startedAt || "").localeCompare(b.startedAt || ""));
}

/** At sign-out: forget every remembered upload (file names may name a patient; on a shared
 * computer they must not outlive the session). The server drops the bytes after 24 h. */
export function forgetAllPending() {
  const keys = [];
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (key && key.startsWith(`${STORE}:`)) keys.push(key);
  }
  keys.forEach((k) => localStorage.removeItem(k));
}

/** Where the server stands on an upload (bytes held). */
export async function serverOffset(uploadId, signal) {
  const r = await send({ method: "HEAD", path: `/uploads/${uploadId}`, signal });
  const n = Number(r.header("Upload-Offset"));
  if (!Number.isFinite(n)) throw new ApiError(0, { code: "network_error" });
  return n;
}

/** Give up a remembered upload: the server drops its bytes, the browser forgets it. */
export async function forgetPending(rec) {
  try {
    await send({ method: "DELETE", path: `/uploads/${rec.id}` });
  } catch (err) {
    if (!gone(err)) throw err;
  } finally {
    localStorage.removeItem(rec.key);
  }
}

// -- the queue -----------------------------------------------------------------------------

let seq = 0;

export class UploadQueue {
  /**
   * @param {object} o
   * @param {string} o.dossierId
   * @param {string} o.owner  the signed-in user's id (remembered uploads are per user)
   * @param {() => void} o.onChange  something changed in `items`
   * @param {(doc: object, item: object) => void} o.onDone  a document was added
   */
  constructor({ dossierId, owner, onChange, onDone, threshold = RESUMABLE_ABOVE }) {
    this.dossierId = dossierId;
    this.owner = owner;
    this.onChange = onChange || (() => {});
    this.onDone = onDone || (() => {});
    this.threshold = threshold;
    this.items = [];
    this.timer = null;
    this.online = () => this.items.forEach((i) => i.wake && i.wake());
    window.addEventListener("online", this.online);
  }

  /** Queue files (a FileList or an array); they are sent one after another. */
  add(files) {
    const added = [...files].map((file) => ({
      key: ++seq,
      file,
      name: file.name,
      size: file.size,
      resumable: file.size > this.threshold,
      state: "queued",
      sent: 0,
      hashed: 0,
      speed: 0,
      eta: null,
      resumedFrom: null,
      retryAt: null,
      attempts: 0,
      lastError: null,
      error: null,
      doc: null,
      upload: null,
      samples: [],
    }));
    this.items.push(...added);
    this.emit(true);
    this.pump();
    return added;
  }

  get busy() {
    return this.items.some((i) => ACTIVE.has(i.state));
  }

  /** The queue's own item (the page may hold a copy). */
  item(ref) {
    return this.items.find((i) => i.key === (typeof ref === "object" ? ref.key : ref)) || null;
  }

  pause(ref) {
    const item = this.item(ref);
    if (item && item.resumable && ACTIVE.has(item.state)) this.stop(item, "pause");
  }

  resume(ref) {
    const item = this.item(ref);
    if (!item || item.state !== "paused" && item.state !== "error") return;
    item.state = "queued";
    item.error = null;
    this.emit(true);
    this.pump();
  }

  /** Skip the wait before the next attempt. */
  retryNow(ref) {
    const item = this.item(ref);
    if (item && item.wake) item.wake();
  }

  async cancel(ref) {
    const item = this.item(ref);
    if (!item) return;
    if (ACTIVE.has(item.state)) {
      this.stop(item, "cancel");
      return;
    }
    if (["queued", "paused", "error"].includes(item.state)) {
      item.state = "cancelled";
      this.emit(true);
      await this.discard(item);
    }
  }

  /** Remove one finished, failed or cancelled item from the list. */
  dismiss(ref) {
    const item = this.item(ref);
    if (!item || ACTIVE.has(item.state)) return;
    this.items = this.items.filter((i) => i !== item);
    this.emit(true);
  }

  /** Remove finished, failed or cancelled items from the list. */
  clearFinished() {
    this.items = this.items.filter((i) => !["done", "cancelled", "error"].includes(i.state));
    this.emit(true);
  }

  /** The page goes away: stop sending, keep what the server holds for a later resume. */
  destroy() {
    window.removeEventListener("online", this.online);
    clearTimeout(this.timer);
    this.onChange = () => {};
    this.onDone = () => {};
    for (const item of this.items) if (ACTIVE.has(item.state)) this.stop(item, "leave");
  }

  // -- internals --------------------------------------------------------------------------

  stop(item, why) {
    item.stopReason = why;
    if (item.ctrl) item.ctrl.abort();
  }

  emit(now) {
    if (now) {
      clearTimeout(this.timer);
      this.timer = null;
      this.onChange();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.onChange();
      }, 150);
    }
  }

  pump() {
    if (this.busy) return;
    const next = this.items.find((i) => i.state === "queued");
    if (next) this.run(next);
  }

  async run(item) {
    item.ctrl = new AbortController();
    item.stopReason = null;
    item.error = null;
    item.attempts = 0;
    item.state = "starting";
    this.emit(true);
    try {
      item.doc = item.resumable ? await this.resumable(item) : await this.simple(item);
      item.state = "done";
      item.sent = item.size;
      item.speed = 0;
      item.eta = null;
      this.emit(true);
      this.onDone(item.doc, item);
    } catch (err) {
      const why = item.stopReason;
      if (why === "leave") return;
      if (why === "cancel") {
        item.state = "cancelled";
        this.emit(true);
        await this.discard(item).catch(() => {});
      } else if (why === "pause") {
        item.state = "paused";
      } else {
        item.state = "error";
        item.error = err instanceof ApiError ? err : new ApiError(0, { code: "network_error", detail: String(err) });
      }
    } finally {
      item.ctrl = null;
      item.wake = null;
      item.retryAt = null;
      if (item.stopReason !== "leave") {
        this.emit(true);
        this.pump();
      }
    }
  }

  /** Forget the server's half of a cancelled upload (and the browser's note of it). */
  async discard(item) {
    const key = keyOf(this.owner, this.dossierId, item.file);
    const rec = item.upload || readRecord(key);
    item.upload = null;
    if (rec) await forgetPending({ ...rec, key });
  }

  progress(item, sent) {
    const now = performance.now();
    item.sent = Math.min(sent, item.size);
    const s = item.samples;
    s.push([now, item.sent]);
    while (s.length > 2 && now - s[0][0] > SPEED_WINDOW_MS) s.shift();
    const dt = (now - s[0][0]) / 1000;
    if (dt >= 0.5) {
      item.speed = Math.max(0, (item.sent - s[0][1]) / dt);
      item.eta = item.speed > 0 ? (item.size - item.sent) / item.speed : null;
    }
    this.emit(false);
  }

  /** Wait before the next attempt: backoff with jitter (or Retry-After), cut short by the
   * browser coming back online or by "Réessayer maintenant". */
  async wait(item, err) {
    item.attempts += 1;
    if (item.attempts > MAX_FAILURES) throw err;
    const after = Number(err.body && err.body.retry_after);
    const base = Number.isFinite(after) && after > 0 ? after * 1000 : BACKOFF_MS[Math.min(item.attempts, BACKOFF_MS.length) - 1];
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    const before = item.state;
    item.state = "waiting";
    item.lastError = err;
    item.retryAt = Date.now() + delay;
    item.samples = [];
    item.speed = 0;
    item.eta = null;
    this.emit(true);
    const signal = item.ctrl.signal;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(), delay);
      const stop = () => {
        clearTimeout(timer);
        item.wake = null;
        reject(new Stopped());
      };
      const done = () => {
        clearTimeout(timer);
        item.wake = null;
        signal.removeEventListener("abort", stop);
        resolve();
      };
      item.wake = done;
      signal.addEventListener("abort", stop, { once: true });
    });
    item.state = before;
    item.retryAt = null;
    this.emit(true);
  }

  /** Run `fn` until it succeeds, waiting between attempts on network errors and 5xx. */
  async retrying(item, fn) {
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof Stopped || !retryable(err)) throw err;
        await this.wait(item, err);
      }
    }
  }

  async simple(item) {
    const form = new FormData();
    form.append("file", item.file, item.file.name);
    item.state = "uploading";
    item.samples = [];
    this.progress(item, 0);
    this.emit(true);
    // No automatic retry: a POST cut after the server stored the file would add it twice.
    const r = await send({
      method: "POST",
      path: `/dossiers/${this.dossierId}/documents`,
      body: form,
      signal: item.ctrl.signal,
      onProgress: (n) => this.progress(item, n),
    });
    return r.data;
  }

  async resumable(item) {
    const signal = item.ctrl.signal;
    const key = keyOf(this.owner, this.dossierId, item.file);
    let rec = item.upload || readRecord(key);
    if (!rec) {
      item.state = "hashing";
      item.hashed = 0;
      this.emit(true);
      const sha256 = await hashFile(item.file, (n) => ((item.hashed = n), this.emit(false)), signal);
      rec = { id: null, sha256, name: item.name, size: item.size, startedAt: new Date().toISOString() };
    }
    item.upload = rec;
    item.state = rec.id ? "uploading" : "starting";
    item.samples = [];
    this.emit(true);
    const chunk = await this.retrying(item, () => this.chunkSize(signal));
    for (;;) {
      try {
        const docId = await this.tusSend(item, rec, key, chunk, signal);
        localStorage.removeItem(key);
        return await this.documentOf(docId, rec, signal);
      } catch (err) {
        if (err instanceof Stopped) throw err;
        // Refused for good (content, checksum): the server dropped the bytes.
        if (!retryable(err)) {
          if (err instanceof ApiError && err.status >= 400 && err.status < 500) localStorage.removeItem(key);
          throw err;
        }
        // tus-js-client's own retries are spent (offline for a while, server down): wait,
        // then start again; it asks the server where it stands (HEAD) and continues.
        await this.wait(item, err);
      }
    }
  }

  /** Send the file with tus-js-client (docs/documents.md, "tus 1.0"); resolves with the id
   * of the document the server made of it. */
  /** The chunk size the server advises (tus discovery, `Consilium-Chunk-Size`). */
  async chunkSize(signal) {
    if (!this.chunk) {
      const r = await send({ method: "OPTIONS", path: `/dossiers/${this.dossierId}/tus`, signal });
      const n = Number(r.header("Consilium-Chunk-Size"));
      this.chunk = Number.isFinite(n) && n > 0 ? Math.min(n, CHUNK_MAX) : CHUNK_MAX;
    }
    return this.chunk;
  }

  tusSend(item, rec, key, chunk, signal) {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(new Stopped());
        return;
      }
      let docId = null;
      const upload = new tus.Upload(item.file, {
        endpoint: `${BASE}/dossiers/${this.dossierId}/tus`,
        uploadUrl: rec.id ? `${BASE}/uploads/${rec.id}` : null,
        metadata: rec.sha256 ? { filename: item.name, sha256: rec.sha256 } : { filename: item.name },
        chunkSize: chunk,
        retryDelays: TUS_RETRY_MS,
        // Our own record (per user and dossier, forgotten at sign-out) remembers the upload.
        storeFingerprintForResuming: false,
        headers: { "X-CSRF-Token": csrfToken(), Accept: "application/json" },
        onUploadUrlAvailable: () => {
          rec.id = upload.url.split("/").pop();
          rec.expiresAt = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
          localStorage.setItem(key, JSON.stringify(rec));
        },
        onAfterResponse: (req, res) => {
          const done = res.getHeader("Consilium-Document-Id");
          if (done) docId = done;
          const held = Number(res.getHeader("Upload-Offset"));
          if (req.getMethod() === "HEAD" && item.resumedFrom === null && held > 0) item.resumedFrom = held;
        },
        onProgress: (sent) => {
          if (item.state !== "uploading") {
            item.state = "uploading";
            item.retryAt = null;
            item.wake = null;
            this.emit(true);
          }
          this.progress(item, sent);
        },
        onChunkComplete: () => {
          item.attempts = 0;
        },
        onShouldRetry: (err, attempt) => {
          const failure = tusError(err);
          if (!retryable(failure) && failure.status !== 409 && failure.status !== 423) return false;
          if (navigator.onLine === false) return false; // wait for "online" in this.wait()
          item.state = "waiting";
          item.lastError = failure;
          item.retryAt = Date.now() + (TUS_RETRY_MS[attempt] || 0);
          item.samples = [];
          item.speed = 0;
          item.eta = null;
          // "Réessayer maintenant": skip tus-js-client's pause, resume from the server's offset.
          item.wake = () => {
            item.wake = null;
            upload.abort(false).then(() => upload.start());
          };
          this.emit(true);
          return true;
        },
        onSuccess: () => {
          signal.removeEventListener("abort", stop);
          resolve(docId);
        },
        onError: (err) => {
          signal.removeEventListener("abort", stop);
          reject(tusError(err));
        },
      });
      const stop = () => {
        // The server keeps what it holds: a later resume continues from there.
        upload.abort(false).finally(() => reject(new Stopped()));
      };
      signal.addEventListener("abort", stop, { once: true });
      item.state = "uploading";
      this.emit(true);
      upload.start();
    });
  }

  /** The document the server made of the upload (found by checksum if its id was lost). */
  async documentOf(docId, rec, signal) {
    if (docId) {
      try {
        return (await send({ method: "GET", path: `/dossiers/${this.dossierId}/documents/${docId}`, signal })).data;
      } catch (err) {
        if (err instanceof Stopped) throw err;
      }
    }
    const found = await this.findDocument(rec, signal);
    if (!found) throw new ApiError(0, { code: "network_error" });
    return found;
  }

  async findDocument(rec, signal) {
    const r = await send({ method: "GET", path: `/dossiers/${this.dossierId}/documents`, signal });
    const docs = ((r.data && r.data.categories) || []).flatMap((c) => c.documents);
    return docs.find((d) => d.size === rec.size && (rec.sha256 ? d.sha256 === rec.sha256 : d.filename === rec.name)) || null;
  }
}
