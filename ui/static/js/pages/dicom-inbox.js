// « Examens à rapprocher » (secretariat): DICOM exams received from a modality or the PACS
// that matched no dossier wait here; each is attached to a dossier chosen by a search on
// the patient's name, or rejected with a reason. The server files and audits.
import { api } from "../api.js";
import { Alert, Empty, errorMessage, toast, useTitle } from "../components.js";
import { formatDate, formatDateTime, t } from "../i18n.js";
import { html, useEffect, useState } from "../lib.js";

const isoDate = (s) => (s && s.length === 10 ? `${s.slice(8)}/${s.slice(5, 7)}/${s.slice(0, 4)}` : s || "");

function ExamRow({ exam, onDone }) {
  const [q, setQ] = useState(exam.patient_name.split("^")[0] || "");
  const [found, setFound] = useState(null);
  const [target, setTarget] = useState("");
  const [comment, setComment] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const search = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const r = await api.get(`/dossiers?q=${encodeURIComponent(q)}&per_page=20`);
      setFound(r.items || []);
      setTarget(r.items && r.items.length ? r.items[0].id : "");
    } catch (err) {
      setError(err);
    }
  };
  const act = async (what) => {
    setBusy(true);
    setError(null);
    try {
      if (what === "attach") await api.post(`/dicom-inbox/${exam.id}/attach`, { dossier_id: target });
      else await api.post(`/dicom-inbox/${exam.id}/reject`, { comment });
      toast(t(what === "attach" ? "inbox.attached" : "inbox.rejected"));
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const id = `exam-${exam.id}`;
  return html`<li class="card inbox-exam">
    <div class="card-body">
      <h2 id=${`${id}-title`} class="h3">${exam.patient_name.replace(/\^/g, " ") || t("inbox.no_name")} — ${exam.description || exam.modality}</h2>
      <p class="small muted">${t("inbox.details", {
        id: exam.patient_id || "—",
        birth: isoDate(exam.patient_birth_date) || "—",
        date: isoDate(exam.study_date) || "—",
        n: exam.instances,
        received: formatDateTime(exam.received_at),
      })}</p>
      <p class="small">${t(`inbox.reason.${exam.reason}`)}</p>
      <${Alert}>${error && errorMessage(error)}<//>
      <form class="row" onSubmit=${search}>
        <label for=${`${id}-q`}>${t("inbox.find_dossier")}</label>
        <input id=${`${id}-q`} value=${q} minlength="2" onInput=${(e) => setQ(e.target.value)} />
        <button type="submit" class="btn btn-sm">${t("inbox.search")}</button>
      </form>
      ${found !== null && (found.length === 0
        ? html`<p class="small muted">${t("inbox.no_dossier")}</p>`
        : html`<div class="row"><label for=${`${id}-target`}>${t("inbox.dossier")}</label>
          <select id=${`${id}-target`} value=${target} onChange=${(e) => setTarget(e.target.value)}>
            ${found.map((d) => html`<option value=${d.id}>${d.number} — ${d.patient_name} (${formatDate(d.patient_birth_date)})</option>`)}
          </select>
          <button type="button" class="btn btn-sm btn-primary" disabled=${busy || !target} onClick=${() => act("attach")}>${t("inbox.attach")}</button></div>`)}
      <div class="row"><label for=${`${id}-why`}>${t("inbox.reject_reason")}</label>
        <input id=${`${id}-why`} value=${comment} maxlength="500" onInput=${(e) => setComment(e.target.value)} />
        <button type="button" class="btn btn-sm btn-danger" disabled=${busy} onClick=${() => act("reject")}>${t("inbox.reject")}</button></div>
    </div></li>`;
}

export function DicomInboxPage() {
  useTitle(t("inbox.title"));
  const [exams, setExams] = useState(null);
  const [error, setError] = useState(null);
  const load = () =>
    api
      .get("/dicom-inbox")
      .then((r) => (setExams(r.exams || []), setError(null)))
      .catch((err) => (setExams([]), setError(err)));
  useEffect(() => {
    load();
  }, []);
  return html`<section aria-labelledby="inbox-title">
    <h1 id="inbox-title">${t("inbox.title")}</h1>
    <p class="muted">${t("inbox.intro")}</p>
    <${Alert}>${error && errorMessage(error)}<//>
    ${exams === null ? html`<p class="muted small">${t("common.loading")}</p>`
      : exams.length === 0 ? html`<${Empty} icon="file">${t("inbox.none")}<//>`
      : html`<ul class="inbox-list">${exams.map((e) => html`<${ExamRow} key=${e.id} exam=${e} onDone=${load} />`)}</ul>`}
  </section>`;
}
