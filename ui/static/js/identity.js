// The identity status (identitovigilance, RNIV): the evidence a status rests on, and the
// panel that shows the status history and moves the status with a reason. Used by the
// wizard's identity step and the dossier page.
import { api } from "./api.js";
import { Alert, errorMessage } from "./components.js";
import { formatDateTime, t } from "./i18n.js";
import { html, useEffect, useState } from "./lib.js";

export const DOCUMENTS = ["identity_card", "passport", "residence_permit", "family_record_book", "birth_certificate"];
export const STATUSES = ["provisional", "recovered", "validated", "qualified"];

// What each status rests on (RNIV): the INSi teleservice, a high-trust document, or both.
export function EvidenceFields({ prefix, status, insi, setInsi, doc, setDoc }) {
  const needsInsi = status === "recovered" || status === "qualified";
  const needsDoc = status === "validated" || status === "qualified";
  return html`${needsInsi && html`<div class="field"><label class="check" for=${`${prefix}-insi`}>
      <input id=${`${prefix}-insi`} type="checkbox" checked=${insi} onChange=${(e) => setInsi(e.target.checked)} /> ${t("identity.insi_checked")}</label></div>`}
    ${needsDoc && html`<div class="field"><label for=${`${prefix}-doc`}>${t("identity.document")}</label>
      <select id=${`${prefix}-doc`} class="input" value=${doc} onChange=${(e) => setDoc(e.target.value)}>
        <option value="">–</option>${DOCUMENTS.map((d) => html`<option value=${d}>${t(`identity.doc_${d}`)}</option>`)}</select></div>`}`;
}

export function StatusPanel({ p, onChanged }) {
  const [history, setHistory] = useState(null);
  const [target, setTarget] = useState("");
  const [reason, setReason] = useState("");
  const [insi, setInsi] = useState(false);
  const [doc, setDoc] = useState("");
  const [error, setError] = useState(null);
  const load = async () => {
    try {
      setHistory(await api.get(`/patients/${p.id}/status-history`));
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => { load(); }, [p.id, p.ins_status]);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const body = { status: target, reason: reason.trim(), insi, ...(doc ? { identity_document: doc } : {}) };
      onChanged(await api.post(`/patients/${p.id}/status`, body));
      setTarget(""); setReason(""); setInsi(false); setDoc("");
    } catch (err) {
      setError(err);
    }
  };
  const targets = p.status_targets || [];
  return html`<section class="identity-status" aria-labelledby=${`st-${p.id}`}>
    <h3 id=${`st-${p.id}`}>${t("identity.status_history")}</h3>
    <${Alert}>${error && errorMessage(error)}<//>
    ${history && html`<ol class="small">${history.map((h) => html`<li>
      ${formatDateTime(h.changed_at)} — <strong>${h.to_label}</strong>${h.from_label ? ` (${t("identity.from")} ${h.from_label})` : ""}
      ${h.changed_by ? ` — ${h.changed_by}` : ""} — ${h.reason}
      ${h.insi ? ` — ${t("identity.insi_checked")}` : ""}${h.identity_document_label ? ` — ${h.identity_document_label}` : ""}</li>`)}</ol>`}
    ${targets.length > 0 && html`<form onSubmit=${submit}>
      <div class="form-grid">
        <div class="field"><label for=${`nt-${p.id}`}>${t("identity.new_status")}</label>
          <select id=${`nt-${p.id}`} class="input" value=${target} onChange=${(e) => setTarget(e.target.value)} required>
            <option value="">–</option>${targets.map((s) => html`<option value=${s}>${t(`identity.status_${s}`)}</option>`)}</select></div>
        <div class="field"><label for=${`nr-${p.id}`}>${t("identity.reason")} *</label>
          <input id=${`nr-${p.id}`} class="input" value=${reason} onInput=${(e) => setReason(e.target.value)} required maxlength="500" /></div>
        <${EvidenceFields} prefix=${`ne-${p.id}`} status=${target} insi=${insi} setInsi=${setInsi} doc=${doc} setDoc=${setDoc} />
      </div>
      <div class="row"><button type="submit" class="btn">${t("identity.change_status")}</button></div>
    </form>`}
  </section>`;
}
