// Copy the browser builds of our npm dependencies into static/vendor/, where Consilium serves
// them. No bundler: the files are the packages' own ES module builds; the only change is
// pointing the hooks module's bare "preact" import at the sibling file (browsers cannot
// resolve bare specifiers without an import map, and the CSP forbids an inline one).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const nm = join(root, "node_modules");
const out = join(root, "static", "vendor");
mkdirSync(join(out, "noble"), { recursive: true });

const files = [
  ["preact/dist/preact.mjs", "preact.mjs"],
  ["preact/hooks/dist/hooks.mjs", "hooks.mjs", (s) => s.replace(/from\s*"preact"/g, 'from"./preact.mjs"')],
  ["htm/dist/htm.module.js", "htm.mjs"],
  ["socket.io-client/dist/socket.io.esm.min.js", "socket.io.mjs"],
  // SHA-256 of large files, incrementally, in the upload worker (noble: audited, no deps).
  ["@noble/hashes/sha2.js", "noble/sha2.js"],
  ["@noble/hashes/_md.js", "noble/_md.js"],
  ["@noble/hashes/_u64.js", "noble/_u64.js"],
  ["@noble/hashes/utils.js", "noble/utils.js"],
  // The tus resumable-upload client (docs/documents.md, "tus 1.0"): its UMD build, which
  // sets window.tus when the uploader imports it (its ES build has bare CommonJS imports).
  ["tus-js-client/dist/tus.min.js", "tus.min.js"],
];
for (const [src, dest, edit] of files) {
  let text = readFileSync(join(nm, src), "utf8");
  text = text.replace(/\n\/\/# sourceMappingURL=.*$/m, "\n");
  if (edit) text = edit(text);
  if (/\bfrom\s*"(?![./])/.test(text)) throw new Error(`${dest}: bare import left`);
  writeFileSync(join(out, dest), text);
}
const pkg = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));
const versions = Object.fromEntries(
  ["preact", "htm", "socket.io-client", "@noble/hashes", "tus-js-client"].map((n) => [n, pkg.packages[`node_modules/${n}`].version]),
);
writeFileSync(join(out, "versions.json"), JSON.stringify(versions, null, 2) + "\n");
console.log("vendored", versions);
