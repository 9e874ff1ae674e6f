// The establishment's PACS from the dossier page (seed 003: « le transfert de l'examen depuis
// le PACS est réalisé en tâche de fond »): search the patient's exams, import one; the import
// runs on the server and its progress is polled here until it is done or failed.
import { api } from "../api.js";
import { Alert, errorMessage, toast } from "../components.js";
import { formatDateTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useState } from "../lib.js";

const RUNNING = new Set(["queued", "running", "filing"]);
const dicomDate = (s) => (s && s.length === 8 ? `${s.slice(6)}/${s.slice(4, 6)}/${s.slice(0, 4)}` : s || "");
// A PACS error (502/503) carries its French reason: show it rather than a generic sentence.
const pacsError = (err) => (err && err.body && typeof err.body.detail === "string" && err.body.code && err.body.code.startsWith("pacs") ? err.body.detail : errorMessage(err));

export function PacsPanel({ dossier, onImported }) {
  const [studies, setStudies] = useState(null);
  const [pulls, setPulls] = useState([]);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const base = `/dossiers/${dossier.id}/pacs`;
  const loadPulls = () => api.get(`${base}/pulls`).then((r) => r.pulls || []).catch(() => []);
  useEffect(() => {
    loadPulls().then(setPulls);
  }, [dossier.id]);
  const running = pulls.some((p) => RUNNING.has(p.status));
  useEffect(() => {
    if (!running) return undefined;
    const timer = setInterval(async () => {
      const next = await loadPulls();
      setPulls((prev) => {
        for (const p of next) {
          const was = prev.find((x) => x.id === p.id);
          if (was && RUNNING.has(was.status) && p.status === "done") {
            toast(t("pacs.imported", { n: p.documents }));
            onImported();
          }
        }
        return next;
      });
    }, 1000);
    return () => clearInterval(timer);
  }, [running, dossier.id]);
  const search = async () => {
    setBusy(true);
    setError(null);
    try {
      setStudies((await api.get(`${base}/studies`)).studies || []);
    } catch (err) {
      setError(pacsError(err));
    } finally {
      setBusy(false);
    }
  };
  const pull = async (s) => {
    setError(null);
    try {
      const job = await api.post(`${base}/pulls`, { study_uid: s.study_uid });
      setPulls((p) => [job, ...p.filter((x) => x.id !== job.id)]);
    } catch (err) {
      setError(pacsError(err));
    }
  };
  const progress = (p) =>
    p.status === "done"
      ? t("pacs.done", { n: p.documents })
      : p.status === "failed"
        ? p.error
        : p.total
          ? t("pacs.progress", { received: p.received, total: p.total })
          : t("pacs.waiting");
  return html`<section class="pacs" aria-labelledby="pacs-title">
    <div class="row-between"><h3 id="pacs-title">${t("pacs.title")}</h3>
      <button type="button" class="btn btn-sm" disabled=${busy} onClick=${search}><${Icon} name="search" />${t("pacs.search")}</button></div>
    <${Alert}>${error}<//>
    ${studies !== null && (studies.length === 0
      ? html`<p class="muted small">${t("pacs.none")}</p>`
      : html`<table class="table pacs-studies"><thead><tr>
          <th scope="col">${t("pacs.date")}</th><th scope="col">${t("pacs.description")}</th>
          <th scope="col">${t("pacs.modalities")}</th><th scope="col">${t("pacs.images")}</th><th scope="col">${t("pacs.patient")}</th><th scope="col"><span class="visually-hidden">${t("pacs.action")}</span></th></tr></thead>
        <tbody>${studies.map((s) => html`<tr key=${s.study_uid}>
          <td>${dicomDate(s.study_date)}</td><td>${s.description}</td><td>${s.modalities.join(", ")}</td>
          <td>${s.instances ?? ""}</td><td>${s.patient_name.replace(/\^/g, " ")} (${s.patient_id})</td>
          <td><button type="button" class="btn btn-sm btn-primary" disabled=${pulls.some((p) => p.study_uid === s.study_uid && RUNNING.has(p.status))}
            onClick=${() => pull(s)} aria-label=${t("pacs.import_study", { name: s.description || s.study_date })}>${t("pacs.import")}</button></td></tr>`)}</tbody></table>`)}
    ${pulls.length > 0 && html`<ul class="pacs-pulls small" aria-live="polite">${pulls.map((p) => html`<li key=${p.id} class=${p.status === "failed" ? "ko" : ""}>
      ${t("pacs.pull_of", { when: formatDateTime(p.created_at) })} — ${progress(p)}
      ${RUNNING.has(p.status) && p.total ? html` <progress max=${p.total} value=${p.received}></progress>` : ""}</li>`)}</ul>`}
  </section>`;
}
