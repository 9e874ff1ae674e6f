// The dossier's history as sentences (ui/static/js/history.js): reads grouped, filters.
import assert from "node:assert/strict";
import { test } from "node:test";

import { groupHistory, historyKind, historySentence } from "../static/js/history.js";

const CAT = {
  "history.reads": "{name} a consulté le dossier ({count} fois)",
  "history.dossier_create": "{name} a créé le dossier",
  "history.dossier_read": "{name} a ouvert le dossier",
  "history.document_read_file": "{name} a ouvert « {file} »",
  "history.dossier_send_mss": "{name} a envoyé « {file} » par MSSanté à {to}",
  "history.dossier_send_failed": "L'envoi de « {file} » à {to} par {name} a échoué",
  "history.other": "{name} a modifié le dossier",
  "history.denied": "Accès refusé à {name}",
};
const t = (k, v) => CAT[k].replace(/\{(\w+)\}/g, (m, x) => (x in v ? String(v[x]) : m));
const has = (k) => k in CAT;
const A = { actor_id: "a", actor_label: "Dr Alice Martin" };
const B = { actor_id: "b", actor_label: "Dr Bruno Petit" };
const at = (m) => `2026-12-07T10:${String(m).padStart(2, "0")}:00Z`;
const entries = [
  { ...A, action: "dossier.create", at: at(0), outcome: "success", details: {} },
  { ...A, action: "dossier.read", at: at(1), outcome: "success", details: {} },
  { ...A, action: "document.read", at: at(2), outcome: "success", details: { filename: "ECG.pdf" } },
  { ...A, action: "dossier.read", at: at(3), outcome: "success", details: {} },
  { ...B, action: "dossier.read", at: at(4), outcome: "success", details: {} },
  { ...B, action: "dossier.send", at: at(5), outcome: "success", details: { channel: "mss", filename: "CR.pdf", recipient: "dr@x.mssante.fr" } },
  { ...B, action: "dossier.send", at: at(6), outcome: "failure", details: { channel: "mss", filename: "photo.png", recipient: "dr@x.mssante.fr" } },
  { ...B, action: "dossier.mystery", at: at(7), outcome: "success", details: {} },
];

test("each action is a read, a change or a send", () => {
  assert.equal(historyKind("dossier.read"), "read");
  assert.equal(historyKind("document.read"), "read");
  assert.equal(historyKind("dossier.create"), "change");
  assert.equal(historyKind("dossier.send"), "send");
});

test("consecutive reads by one person are one line with their count and span, newest first", () => {
  const items = groupHistory(entries);
  assert.equal(items.length, 6);
  const alice = items.find((x) => x.who === "a" && x.kind === "read");
  assert.equal(alice.count, 3);
  assert.equal(alice.from, at(1));
  assert.equal(alice.to, at(3));
  assert.equal(historySentence(alice, t, has), "Dr Alice Martin a consulté le dossier (3 fois)");
  assert.equal(items[0].entry.action, "dossier.mystery");
  assert.equal(items.at(-1).entry.action, "dossier.create");
});

test("sentences in French, never the technical code", () => {
  const s = groupHistory(entries).map((x) => historySentence(x, t, has));
  assert.deepEqual(s, [
    "Dr Bruno Petit a modifié le dossier",
    "L'envoi de « photo.png » à dr@x.mssante.fr par Dr Bruno Petit a échoué",
    "Dr Bruno Petit a envoyé « CR.pdf » par MSSanté à dr@x.mssante.fr",
    "Dr Bruno Petit a ouvert le dossier",
    "Dr Alice Martin a consulté le dossier (3 fois)",
    "Dr Alice Martin a créé le dossier",
  ]);
  const single = groupHistory([entries[2]]);
  assert.equal(historySentence(single[0], t, has), "Dr Alice Martin a ouvert « ECG.pdf »");
});

test("a filter keeps one kind of event", () => {
  assert.deepEqual(groupHistory(entries, "send").map((x) => x.entry.at), [at(6), at(5)]);
  assert.deepEqual(groupHistory(entries, "change").map((x) => x.entry.action), ["dossier.mystery", "dossier.create"]);
  const reads = groupHistory(entries, "read");
  assert.deepEqual(reads.map((x) => x.count), [1, 3]);
});
