// The dossier page (seed 000 § 2.2.4 – 3.2): identity banner, state, « lu par Dr X le … »,
// recipients, the form with its requester and expert parts (save, sign: a signed part is
// locked), closure, history. Documents, viewer and report come with the documents API.
import { api } from "../api.js";
import { Alert, Dialog, errorMessage, toast, useTitle } from "../components.js";
import { groupHistory, historySentence } from "../history.js";
import { formatBirthDate, formatDate, formatDateTime, formatTime, hasMessage, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { StatusPanel } from "../identity.js";
import { html, useEffect, useMemo, useState } from "../lib.js";
import { patientName, sexSymbol } from "../model.js";
import { cachedDossier, rememberDossier } from "../recent.js";
import { Link } from "../router.js";
import { DocumentsPanel } from "./documents.js";
import { TeleconsultPanel } from "./teleconsult.js";
import { ExamHistory } from "./results.js";

function FieldInput({ f, value, onChange, disabled, id }) {
  const common = { id, disabled, required: f.required, class: "input" };
  if (f.type === "textarea") return html`<textarea ...${common} value=${value || ""} onInput=${(e) => onChange(e.target.value)} maxlength=${f.max_length}></textarea>`;
  if (f.type === "select") return html`<select ...${common} value=${value || ""} onChange=${(e) => onChange(e.target.value)}>
    <option value="">–</option>${(f.options || []).map((o) => html`<option value=${typeof o === "string" ? o : o.value}>${typeof o === "string" ? o : o.label}</option>`)}</select>`;
  if (f.type === "checkbox") return html`<input type="checkbox" id=${id} disabled=${disabled} checked=${value === true} onChange=${(e) => onChange(e.target.checked)} />`;
  const type = f.type === "number" ? "number" : f.type === "date" ? "date" : "text";
  return html`<input ...${common} type=${type} value=${value ?? ""} onInput=${(e) => onChange(type === "number" && e.target.value !== "" ? Number(e.target.value) : e.target.value)} />`;
}

function FormPart({ dossier, part, onChanged }) {
  const [values, setValues] = useState(part.values || {});
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [confirm, setConfirm] = useState(false);
  useEffect(() => setValues(part.values || {}), [part.saved_at, part.signed_at]);
  const side = part.side;
  const canEdit = dossier.actions.includes(side === "requester" ? "edit_request" : "edit_expertise") && part.status !== "signed";
  const canSign = dossier.actions.includes(side === "requester" ? "sign_request" : "sign_expertise") && part.status !== "signed";
  const run = async (fn) => {
    setBusy(true);
    setError(null);
    try {
      onChanged(await fn());
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      setBusy(false);
    }
  };
  const save = () => run(() => api.put(`/dossiers/${dossier.id}/forms/${side}`, { values })).then((ok) => ok && toast(t("common.saved")));
  const sign = async () => {
    setConfirm(false);
    if (await run(() => api.post(`/dossiers/${dossier.id}/forms/${side}/sign`, { values }))) toast(t("dossier.signed_toast"));
  };
  const fieldErrors = (error && error.body && error.body.fields) || {};
  return html`<section class="card" aria-labelledby=${`part-${side}`}>
    <div class="card-header row-between"><h2 id=${`part-${side}`}>${t(`dossier.part_${side}`)}</h2>
      ${part.status === "signed"
        ? html`<span class="badge badge-closed"><${Icon} name="lock" />${t("dossier.signed_by", { name: part.signed_by ? part.signed_by.name : "", date: formatDateTime(part.signed_at) })}</span>`
        : html`<span class="badge badge-draft">${t(`dossier.part_status_${part.status}`)}</span>`}</div>
    <div class="card-body">
      <${Alert}>${error && errorMessage(error)}<//>
      ${part.fields.map((f) => {
        const id = `f-${side}-${f.name}`;
        return html`<div class=${f.type === "checkbox" ? "field check" : "field"} key=${f.name}>
          ${f.type === "checkbox" ? html`<${FieldInput} f=${f} id=${id} value=${values[f.name]} disabled=${!canEdit} onChange=${(v) => setValues({ ...values, [f.name]: v })} /><label for=${id}>${f.label}${f.required ? " *" : ""}</label>`
            : html`<label for=${id}>${f.label}${f.required ? " *" : ""}</label><${FieldInput} f=${f} id=${id} value=${values[f.name]} disabled=${!canEdit} onChange=${(v) => setValues({ ...values, [f.name]: v })} />`}
          ${f.help && html`<span class="hint">${f.help}</span>`}
          ${fieldErrors[f.name] && html`<span class="hint ko">${fieldErrors[f.name]}</span>`}
        </div>`;
      })}
      ${part.saved_at && part.status !== "signed" && html`<p class="small muted">${t("dossier.saved_by", { name: part.saved_by ? part.saved_by.name : "", date: formatDateTime(part.saved_at) })}</p>`}
      ${(canEdit || canSign) && html`<div class="row">
        ${canEdit && html`<button type="button" class="btn" disabled=${busy} onClick=${save}>${t("common.save")}</button>`}
        ${canSign && html`<button type="button" class="btn btn-primary" disabled=${busy} onClick=${() => setConfirm(true)}><${Icon} name="pen" />${t("dossier.sign")}</button>`}
      </div>`}
    </div>
    <${Dialog} open=${confirm} title=${t("dossier.sign_confirm_title")} onClose=${() => setConfirm(false)}
      footer=${html`<button type="button" class="btn" onClick=${() => setConfirm(false)}>${t("common.cancel")}</button>
        <button type="button" class="btn btn-primary" onClick=${sign}>${t("dossier.sign")}</button>`}>
      <p>${t(`dossier.sign_confirm_${side}`)}</p>
    <//>
  </section>`;
}

function Closure({ d, onChanged }) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState("");
  const [error, setError] = useState(null);
  const act = async (fn) => {
    setError(null);
    try {
      onChanged(await fn());
      setOpen(false);
    } catch (err) {
      setError(err);
    }
  };
  const canAsk = d.actions.includes("request_closure") && d.state !== "closure_requested";
  const canClose = d.actions.includes("close");
  const canWithdraw = d.state === "closure_requested" && d.actions.includes("request_closure");
  if (!canAsk && !canClose && !canWithdraw) return null;
  return html`<div class="row">
    <${Alert}>${error && errorMessage(error)}<//>
    ${canClose && html`<button type="button" class="btn btn-sm" onClick=${() => act(() => api.post(`/dossiers/${d.id}/close`))}><${Icon} name="lock" />${t("dossier.close")}</button>`}
    ${canAsk && !canClose && html`<button type="button" class="btn btn-sm" onClick=${() => setOpen(true)}>${t("dossier.ask_closure")}</button>`}
    ${canWithdraw && html`<button type="button" class="btn btn-sm" onClick=${() => act(() => api.del(`/dossiers/${d.id}/closure-request`))}>${t("dossier.withdraw_closure")}</button>`}
    <${Dialog} open=${open} title=${t("dossier.ask_closure")} onClose=${() => setOpen(false)}
      footer=${html`<button type="button" class="btn" onClick=${() => setOpen(false)}>${t("common.cancel")}</button>
        <button type="button" class="btn btn-primary" onClick=${() => act(() => api.post(`/dossiers/${d.id}/closure-request`, { reason }))}>${t("common.confirm")}</button>`}>
      <div class="field"><label for="closure-reason">${t("dossier.closure_reason")}</label>
        <textarea id="closure-reason" class="input" value=${reason} onInput=${(e) => setReason(e.target.value)} maxlength="2000"></textarea></div>
    <//>
  </div>`;
}

const HISTORY_KINDS = ["all", "change", "read", "send"];

/** The history as sentences, reads by one person in a row told once, with a kind filter. */
function History({ entries }) {
  const [kind, setKind] = useState("all");
  const items = useMemo(() => groupHistory(entries, kind), [entries, kind]);
  const span = (x) => {
    if (x.count === 1) return formatDateTime(x.from);
    const sameDay = formatDate(x.from) === formatDate(x.to);
    return `${formatDate(x.from)} · ${t("history.span", { from: formatTime(x.from), to: sameDay ? formatTime(x.to) : formatDateTime(x.to) })}`;
  };
  return html`<div class="card-body history">
    <div class="seg" role="group" aria-label=${t("history.filter")}>
      ${HISTORY_KINDS.map((k) => html`<button type="button" key=${k} class="btn btn-sm" aria-pressed=${kind === k ? "true" : "false"} onClick=${() => setKind(k)}>${t(`history.filter_${k}`)}</button>`)}
    </div>
    ${items.length === 0 ? html`<p class="small muted">${t("history.empty")}</p>` : html`<ul class="history-list" tabindex="0" aria-label=${t("dossier.history")}>
      ${items.map((x) => html`<li key=${`${x.kind}-${x.from}-${x.entry.action}`} class=${`history-${x.kind}`}>
        <span>${historySentence(x, t, hasMessage)}</span>
        <span class="small muted">${span(x)}</span></li>`)}</ul>`}
  </div>`;
}

/** Offline: what this browser kept of the dossier (identity and the patient's dossiers),
 * read-only, under a « hors ligne » notice. */
function OfflineDossier({ cached }) {
  const { dossier, others } = cached;
  const p = dossier.patient;
  const sex = sexSymbol(p.sex);
  const all = [dossier, ...others];
  return html`
    <${Alert} kind="warning" title=${t("offline.title")}>${t("offline.dossier_body", { date: formatDateTime(dossier.saved_at) })}<//>
    <section class="card banner-gap" aria-label=${t("dossier.identity")}>
      <div class="identity-banner">
        <span class="avatar" aria-hidden="true">${sex.symbol}</span>
        <div><div class="who">${patientName(p)}</div>
          <div class="small muted">${t("patient.born", { date: formatBirthDate(p.birth_date) })} · ${sex.label}${p.ipp ? ` · IPP ${p.ipp}` : ""}${p.ins ? ` · INS ${p.ins}` : ""}</div></div>
      </div>
    </section>
    <section class="card" aria-labelledby="offline-dossiers"><div class="card-header"><h2 id="offline-dossiers">${t("offline.dossiers")}</h2></div>
      <div class="card-body"><ul class="history-list offline-dossiers">${all.map((x) => html`<li key=${x.id}>
        <span><strong>${x.request_type || t("dossier.title")}</strong>${x.number ? ` · ${x.number}` : ""} <span class=${`badge badge-${x.state}`}>${x.state_label}</span>${x.urgent ? html` <span class="badge badge-urgent">${t("dossier.urgent")}</span>` : ""}</span>
        <span class="small muted">${[x.requester, x.expert].filter(Boolean).join(" → ")} · ${t("activity.col_modified")} ${formatDateTime(x.modified_at)}</span>
      </li>`)}</ul></div>
    </section>
    <p><${Link} href="/app/" class="btn btn-sm"><${Icon} name="home" />${t("nav.activity")}<//></p>`;
}

// Where the signed report stands in the establishment's record (FHIR push, docs/integration.md):
// « Compte-rendu déposé dans le DPI le … »; looked at again while a filing is pending.
function ReportFiling({ id }) {
  const [filings, setFilings] = useState([]);
  useEffect(() => {
    let timer = null;
    let stopped = false;
    const load = () =>
      api
        .get(`/dossiers/${id}/report-filings`)
        .then((x) => {
          if (stopped) return;
          setFilings(x);
          if (x.length && x[0].status === "pending") timer = setTimeout(load, 5000);
        })
        .catch(() => {});
    load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [id]);
  const f = filings[0];
  if (!f) return null;
  if (f.status === "filed") return html`<div class="alert alert-info report-filing" role="status"><${Icon} name="check" /> ${t("dossier.report_filed", { date: formatDateTime(f.filed_at) })}</div>`;
  if (f.status === "failed") return html`<div class="alert alert-warning report-filing" role="status">${t("dossier.report_filing_failed", { error: f.last_error })}</div>`;
  return html`<p class="small muted report-filing" role="status">${t("dossier.report_filing_pending", { attempts: Math.max(f.attempts, 1) })}</p>`;
}

export function DossierPage({ id }) {
  const [d, setD] = useState(null);
  const [docsKey, setDocsKey] = useState(0); // a signed consultation report reloads the documents
  const [error, setError] = useState(null);
  const [history, setHistory] = useState(null);
  useTitle(d ? patientName(d.patient) : t("dossier.title"));
  useEffect(() => {
    api
      .get(`/dossiers/${id}`)
      .then((x) => {
        rememberDossier(x);
        setD(x);
      })
      .catch(setError);
  }, [id]);
  const loadHistory = () => api.get(`/dossiers/${id}/history`).then(setHistory).catch(setError);
  if (error && !d && (error.status === 0 || !navigator.onLine)) {
    const cached = cachedDossier(id);
    if (cached) return html`<${OfflineDossier} cached=${cached} />`;
  }
  if (error && !d) return html`<${Alert}>${errorMessage(error)}<//><p><${Link} href="/app/">${t("nav.activity")}<//></p>`;
  if (!d) return html`<p class="muted" role="status">${t("common.loading")}</p>`;
  const p = d.patient;
  const sex = sexSymbol(p.sex);
  return html`
    <p><${Link} href="/app/" class="btn btn-ghost btn-sm"><${Icon} name="home" />${t("nav.activity")}<//></p>
    <section class="card banner-gap" aria-label=${t("dossier.identity")}>
      <div class="identity-banner">
        <span class="avatar" aria-hidden="true">${sex.symbol}</span>
        <div><div class="who">${patientName(p)}</div>
          <div class="small muted">${t("patient.born", { date: formatBirthDate(p.birth_date) })} · ${sex.label}${p.ipp ? ` · IPP ${p.ipp}` : ""}${p.ins ? ` · INS ${p.ins}` : ""} · ${p.ins_status_label}</div>
          ${d.number && html`<div class="dossier-no">${t("dossier.number", { number: d.number })}${d.my_side === "reader" && html` <span class="badge badge-by-number">${t("dossier.read_by_number")}</span>`}</div>`}</div>
        <span class="grow"></span>
        <div class="stack small">
          <div><span class=${`badge badge-${d.state}`}>${d.state_label}</span> ${d.urgent && html`<span class="badge badge-urgent">${t("dossier.urgent")}</span>`}</div>
          ${d.request_type && html`<div>${t("wizard.step_type")} : <strong>${d.request_type.label}</strong></div>`}
          <${Closure} d=${d} onChanged=${setD} />
        </div>
      </div>
    </section>
    ${d.my_side === "requester" && html`<details class="card banner-gap"><summary class="card-body">${t("identity.status_history")} — ${p.ins_status_label}</summary>
      <div class="card-body"><${StatusPanel} p=${p} onChanged=${(np) => setD({ ...d, patient: np })} /></div></details>`}
    ${d.receipts.map((r) => html`<div class="alert alert-info" role="status" key=${r.user.id}><${Icon} name="check" /> ${r.label}</div>`)}
    <${ReportFiling} id=${d.id} />
    <div class="layout-2">
      <div class="stack">
        <${DocumentsPanel} key=${docsKey} dossier=${d} canAdd=${d.my_side !== "admin" && d.my_side !== "reader" && d.state !== "closed"}
          canReport=${d.my_side !== "reader" && (d.state === "expertised" || d.state === "closed" || d.state === "closure_requested")}
          canSend=${d.my_side !== "reader"} />
        ${d.forms.length ? d.forms.map((part) => html`<${FormPart} key=${part.side} dossier=${d} part=${part} onChanged=${setD} />`) : html`<${Alert} kind="info">${t("dossier.no_form")}<//>`}
      </div>
      <div class="stack">
        <${TeleconsultPanel} d=${d} onChange=${() => setDocsKey((k) => k + 1)} />
        ${(d.my_side === "requester" || d.my_side === "expert") && html`<section class="card" aria-labelledby="rcp-dossier-title">
          <div class="card-header row-between"><h2 id="rcp-dossier-title">${t("rcp.short")}</h2>
            <${Link} class="btn btn-sm" href=${`/app/rcp/new?dossier=${d.id}`}><${Icon} name="users" />${t("rcp.enrol")}<//></div></section>`}
        <${ExamHistory} dossierId=${d.id} />
        <section class="card"><div class="card-header"><h2>${t("dossier.summary")}</h2></div><div class="card-body">
          <dl class="dl">
            <dt>${t("activity.col_requester")}</dt><dd>${d.requester.name}</dd>
            ${d.on_behalf_label && html`<dt></dt><dd class="small muted">${d.on_behalf_label}</dd>`}
            ${d.expert && html`<dt>${t("dossier.expert")}</dt><dd>${d.expert.name}</dd>`}
            <dt>${t("wizard.recipients")}</dt><dd>${d.recipients.map((o) => o.name).join(", ") || "–"}</dd>
            <dt>${t("dossier.created")}</dt><dd>${formatDateTime(d.created_at)}</dd>
            <dt>${t("activity.col_modified")}</dt><dd>${formatDateTime(d.modified_at)}</dd>
            <dt>${t("wizard.comment")}</dt><dd>${d.consent_comment || "–"}</dd>
          </dl></div></section>
        <section class="card" aria-labelledby="history-title"><div class="card-header row-between"><h2 id="history-title">${t("dossier.history")}</h2>
          ${!history && html`<button type="button" class="btn btn-sm" onClick=${loadHistory}>${t("dossier.show_history")}</button>`}</div>
          ${history && html`<${History} entries=${history} />`}
        </section>
      </div>
    </div>`;
}
