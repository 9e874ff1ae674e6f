// The dossier's history as people read it: each audit row of the dossier becomes a sentence
// (« Dr Martin a ouvert le dossier »), the reads one person made in a row are told once with
// their count and time span, and a filter keeps one kind of event (reads, changes, sends).
// No DOM and no imports: Node's test runner loads this module as it is (ui/tests/).

/** What an audited action is, for the filter: "read", "change" or "send". */
export function historyKind(action) {
  if (READS.has(action)) return "read";
  if (SENDS.has(action)) return "send";
  return "change";
}

const READS = new Set([
  "dossier.read",
  "dossier.history",
  "dossier.receipt",
  "dossier.access_by_number",
  "dossier.export",
  "document.read",
  "document.list",
  "dossier.teleconsultation.list",
  "dossier.rooms",
  "document.mark_seen",
  "document.download_dicom",
  "dossier.exam_history",
]);
const SENDS = new Set(["dossier.send", "dossier.vault_download", "dossier.vault_code", "dossier.report"]);

/** The catalogue key of an action's sentence ("history.dossier_read"); dots become "_". */
export function sentenceKey(action) {
  return `history.${action.replace(/\./g, "_")}`;
}

/**
 * Group the entries (oldest first, as the API returns them) for display, newest first:
 * consecutive reads (any read action) by the same person become one item
 * {kind: "read", group: true, count, from, to, actor_label, actions}; every other entry is
 * one item {kind, count: 1, from: at, to: at, entry}. `kind` ("all", "read", "change",
 * "send") keeps only that kind of event.
 */
export function groupHistory(entries, kind = "all") {
  const out = [];
  for (const e of entries) {
    const k = historyKind(e.action);
    if (kind !== "all" && k !== kind) continue;
    const last = out[out.length - 1];
    const who = e.actor_id || e.actor_label;
    if (k === "read" && last && last.kind === "read" && last.who === who && e.outcome !== "denied" && !last.denied) {
      last.count += 1;
      last.to = e.at;
      last.actions.add(e.action);
      last.entry = e;
      continue;
    }
    out.push({ kind: k, who, count: 1, from: e.at, to: e.at, actions: new Set([e.action]), entry: e, denied: e.outcome === "denied" });
  }
  return out.reverse().map(({ actions, ...x }) => ({ ...x, actions: [...actions] }));
}

/** The sentence of one item of groupHistory, with `t(key, vars)` the page's translator and
 * `has(key)` whether its catalogue holds that key. */
export function historySentence(item, t, has) {
  const e = item.entry;
  const name = e.actor_label || t("history.someone");
  const d = e.details || {};
  if (item.denied) return t("history.denied", { name });
  if (item.count > 1) return t("history.reads", { name, count: item.count });
  const key = sentenceKey(e.action);
  const vars = { name, file: d.filename || "", to: d.recipient || "" };
  // The most precise sentence the catalogue has: failed, by channel, or plain.
  const keys = [
    ...(e.outcome === "failure" ? [`${key}_failed`, "history.failed"] : []),
    ...(d.channel ? [`${key}_${d.channel}`] : []),
    ...(d.filename ? [`${key}_file`] : []),
    key,
  ];
  for (const k of keys) if (has(k)) return t(k, vars);
  return t("history.other", { name });
}
