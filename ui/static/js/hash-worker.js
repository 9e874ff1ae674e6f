// Computes a file's SHA-256 off the page's thread (started by upload.js): reads the file in
// slices, posts {progress} as it goes, then {sha256}. Nothing is kept: the page terminates it.
import { Sha256 } from "./sha256.js";

const SLICE = 4 * 1024 * 1024;

self.onmessage = async (event) => {
  const file = event.data.file;
  try {
    const h = new Sha256();
    for (let offset = 0; offset < file.size; offset += SLICE) {
      const end = Math.min(offset + SLICE, file.size);
      h.update(new Uint8Array(await file.slice(offset, end).arrayBuffer()));
      self.postMessage({ progress: end });
    }
    self.postMessage({ sha256: h.hex() });
  } catch (err) {
    self.postMessage({ error: String(err) });
  }
};
