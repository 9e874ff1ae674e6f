// Computes a file's SHA-256 off the page's thread (started by upload.js): reads the file in
// slices, posts {progress} as it goes, then {sha256}. Nothing is kept: the page terminates it.
// The hash is noble-hashes' (audited, incremental: a 2 GB file is never held in memory, which
// WebCrypto's one-shot digest would need).
import { sha256 } from "../vendor/noble/sha2.js";

const SLICE = 4 * 1024 * 1024;

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

self.onmessage = async (event) => {
  const file = event.data.file;
  try {
    const h = sha256.create();
    for (let offset = 0; offset < file.size; offset += SLICE) {
      const end = Math.min(offset + SLICE, file.size);
      h.update(new Uint8Array(await file.slice(offset, end).arrayBuffer()));
      self.postMessage({ progress: end });
    }
    self.postMessage({ sha256: hex(h.digest()) });
  } catch (err) {
    self.postMessage({ error: String(err) });
  }
};
