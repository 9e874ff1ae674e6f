// Imaging results (seed 002 § 3.1): « Derniers résultats non vus » on the home page (the
// reports and exams of my dossiers from the last 30 days that I have not opened; « Ouvrir »
// or « Marquer comme vu » removes one), and the exams history of the dossier page, one node
// per visit with its reports and the way to its images.
import { api, isMissing } from "../api.js";
import { Alert, errorMessage, toast } from "../components.js";
import { formatBirthDate, formatDateTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useState } from "../lib.js";
import { navigate } from "../router.js";

const content = (dossierId, docId) => `/api/v1/dossiers/${dossierId}/documents/${docId}/content?inline=1`;

function resultTitle(r) {
  const date = r.study_date ? ` ${t("results.of_date", { date: formatBirthDate(r.study_date) })}` : "";
  return `${r.title}${date}`;
}

/** The home page's list; renders nothing until there is something to show. */
export function UnseenResults() {
  const [items, setItems] = useState(null);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState(null);
  const load = () =>
    api
      .get("/me/unseen-results", { query: { per_page: 20 } })
      .then((page) => (setItems(page.items || []), setTotal(page.total || 0), setError(null)))
      .catch((err) => (setItems([]), setError(isMissing(err) ? null : err)));
  useEffect(() => {
    load();
    // A report opened in another tab leaves the list when one comes back.
    const again = () => document.visibilityState === "visible" && load();
    document.addEventListener("visibilitychange", again);
    return () => document.removeEventListener("visibilitychange", again);
  }, []);
  const drop = (r) => {
    setItems((list) => list.filter((x) => x !== r));
    setTotal((n) => Math.max(0, n - 1));
  };
  const markSeen = async (r) => {
    try {
      await api.post(`/dossiers/${r.dossier_id}/documents/${r.first_document_id}/seen`);
      drop(r);
      toast(t("results.marked", { title: r.title }));
    } catch (err) {
      setError(err);
    }
  };
  if (error) return html`<div class="banner-gap"><${Alert}>${errorMessage(error)}<//></div>`;
  if (!items || !items.length) return null;
  return html`<section class="card banner-gap unseen-results" aria-labelledby="unseen-title">
    <div class="card-header row-between"><h2 id="unseen-title">${t("results.unseen_title")}</h2>
      <span class="small muted">${t("results.unseen_count", { count: total })}</span></div>
    <p class="card-body small muted unseen-help">${t("results.unseen_help")}</p>
    <ul class="unseen-list">
      ${items.map((r) => html`<li key=${`${r.dossier_id}:${r.first_document_id}`} class="unseen-item">
        <span class="unseen-icon" aria-hidden="true"><${Icon} name=${r.kind === "exam" ? "grid" : "file"} /></span>
        <div class="grow unseen-text">
          <strong class="unseen-title">${resultTitle(r)}</strong>
          <div class="small">${r.patient_name} · ${t("patient.born", { date: formatBirthDate(r.patient_birth_date) })}</div>
          <div class="small muted">${[
            r.kind === "exam" ? t("results.exam", { count: r.files }) : t("results.report"),
            t("activity.number", { number: r.dossier_number }),
            t("results.added", { date: formatDateTime(r.added_at) }),
          ].join(" · ")}</div>
        </div>
        <div class="row unseen-actions">
          ${r.kind === "report"
            ? html`<a class="btn btn-sm btn-primary" href=${content(r.dossier_id, r.first_document_id)} target="_blank" rel="noopener"
                aria-label=${t("results.open_name", { name: r.title })} onClick=${() => setTimeout(() => drop(r), 0)}>
                <${Icon} name="file" />${t("results.open")}</a>`
            : html`<button type="button" class="btn btn-sm btn-primary" aria-label=${t("results.open_exam_name", { name: r.title })}
                onClick=${() => navigate(`/app/dossiers/${r.dossier_id}`)}><${Icon} name="grid" />${t("results.open_exam")}</button>`}
          <button type="button" class="btn btn-sm" aria-label=${t("results.mark_seen_name", { name: r.title })} onClick=${() => markSeen(r)}>
            <${Icon} name="check" />${t("results.mark_seen")}</button>
        </div>
      </li>`)}
    </ul>
  </section>`;
}

/** « Résultats d'imagerie » of the dossier page: the patient's visits, newest first. */
export function ExamHistory({ dossierId }) {
  const [visits, setVisits] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api
      .get(`/dossiers/${dossierId}/exam-history`)
      .then((v) => (setVisits(v || []), setError(null)))
      .catch((err) => (setVisits([]), setError(isMissing(err) ? null : err)));
  }, [dossierId]);
  if (error) return html`<${Alert}>${errorMessage(error)}<//>`;
  if (!visits || !visits.length) return null;
  const showImages = (v) => {
    if (!v.current) return navigate(`/app/dossiers/${v.dossier_id}`);
    const target = document.getElementById("docs-title");
    if (target) {
      target.scrollIntoView({ block: "start" });
      target.setAttribute("tabindex", "-1");
      target.focus();
    }
  };
  return html`<section class="card exam-history" aria-labelledby="exams-title">
    <div class="card-header"><h2 id="exams-title">${t("results.history_title")}</h2></div>
    <div class="card-body">${visits.map((v, i) => html`<details class="visit" key=${v.dossier_id} open=${i === 0}>
      <summary><strong>${v.title}</strong> ${t("results.of_date", { date: formatBirthDate(v.date) })}
        ${v.current ? "" : html` <span class="small muted">· ${t("activity.number", { number: v.dossier_number })}</span>`}</summary>
      <ul class="visit-items">
        ${v.reports.map((r) => html`<li key=${r.document_id}>
          <a href=${content(v.dossier_id, r.document_id)} target="_blank" rel="noopener">
            <${Icon} name="file" />${t("results.report_link", { name: r.filename })}</a>
          ${!r.seen && html` <span class="badge badge-awaiting_expertise">${t("results.new")}</span>`}</li>`)}
        ${!v.reports.length && html`<li class="small muted">${t("results.no_report")}</li>`}
        <li class="small muted">${v.studies.map((s) => [s.modalities.join("/"), t("results.exam", { count: s.files })].filter(Boolean).join(" · ")).join(" ; ")}</li>
        <li><button type="button" class="btn btn-sm" onClick=${() => showImages(v)}><${Icon} name="grid" />${t("results.show_images")}</button></li>
      </ul>
    </details>`)}</div>
  </section>`;
}
