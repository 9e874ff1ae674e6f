// "Envoyer un document" in a room (seed 001, 3.2): to one participant or the whole room, a
// file from this computer or a document of the room's dossier. It arrives as a downloadable
// chat item (rooms/attachments.py); a patient downloads only what is addressed to them.
import { api } from "../api.js";
import { Alert, Dialog, errorMessage, toast } from "../components.js";
import { formatDateTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useRef, useState } from "../lib.js";

function DossierDocuments({ dossierId, picked, onPick }) {
  const [categories, setCategories] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api
      .get(`/dossiers/${dossierId}/documents`)
      .then((r) => setCategories((r.categories || []).filter((c) => c.documents && c.documents.length)))
      .catch(setError);
  }, [dossierId]);
  if (error) return html`<${Alert}>${errorMessage(error)}<//>`;
  if (!categories) return html`<p class="muted small" role="status">${t("common.loading")}</p>`;
  if (!categories.length) return html`<p class="muted small">${t("room.send_no_documents")}</p>`;
  return html`<div class="send-docs" role="radiogroup" aria-label=${t("room.send_from_dossier")}>
    ${categories.map((c) => html`<fieldset key=${c.code}><legend>${c.label}</legend>
      ${c.documents.map((d) => html`<label key=${d.id} class=${`send-doc ${picked === d.id ? "on" : ""}`}>
        <input type="radio" name="send-doc" value=${d.id} checked=${picked === d.id} onChange=${() => onPick(d.id)} />
        <${Icon} name="file" /><span class="grow">${d.filename}<br /><span class="small muted">${d.author_label} · ${formatDateTime(d.created_at)}</span></span>
      </label>`)}
    </fieldset>`)}
  </div>`;
}

export function SendDocumentDialog({ open, onClose, roomId, dossierId, recipients, initialTo }) {
  const [to, setTo] = useState(initialTo || "");
  const [from, setFrom] = useState(dossierId ? "dossier" : "disk");
  const [picked, setPicked] = useState(null);
  const [file, setFile] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const input = useRef(null);
  useEffect(() => {
    if (open) {
      setTo(initialTo || "");
      setError(null);
    }
  }, [open]);
  const send = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      let name;
      if (from === "dossier") {
        const a = await api.post(`/rooms/${roomId}/attachments/from-document`, { document_id: picked, ...(to ? { to } : {}) });
        name = a.filename;
      } else {
        // In a room opened on a dossier, the file also lands in the dossier (« Pendant la
        // téléconsultation du … »); someone who may not add to it still sends it.
        const post = (into) => {
          const form = new FormData();
          if (to) form.append("to", to);
          form.append("source", "upload");
          if (into) form.append("file_into_dossier", "true");
          form.append("file", file, file.name);
          return api.upload(`/rooms/${roomId}/attachments`, form);
        };
        try {
          await post(!!dossierId);
        } catch (err) {
          if (!dossierId || err.status !== 403) throw err;
          await post(false);
        }
        name = file.name;
      }
      toast(t("room.doc_sent", { name }));
      setPicked(null);
      setFile(null);
      if (input.current) input.current.value = "";
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const ready = from === "dossier" ? !!picked : !!file;
  return html`<${Dialog} open=${open} title=${t("room.send_doc")} onClose=${onClose}>
    <form onSubmit=${send} class="send-form">
      <${Alert}>${error && errorMessage(error)}<//>
      <div class="field"><label for="send-to">${t("room.chat_to")}</label>
        <select id="send-to" class="input" value=${to} onChange=${(e) => setTo(e.target.value)}>
          <option value="">${t("room.chat_everyone")}</option>
          ${recipients.map((p) => html`<option value=${p.participant_id}>${p.name}</option>`)}
        </select></div>
      ${dossierId && html`<div class="segmented" role="group" aria-label=${t("room.send_source")}>
        <button type="button" aria-pressed=${from === "dossier" ? "true" : "false"} onClick=${() => setFrom("dossier")}>
          <${Icon} name="folder" />${t("room.send_from_dossier")}</button>
        <button type="button" aria-pressed=${from === "disk" ? "true" : "false"} onClick=${() => setFrom("disk")}>
          <${Icon} name="file" />${t("room.send_from_disk")}</button>
      </div>`}
      ${from === "dossier"
        ? html`<${DossierDocuments} dossierId=${dossierId} picked=${picked} onPick=${setPicked} />`
        : html`<div class="field"><label for="send-file">${t("room.send_file")}</label>
            <input ref=${input} id="send-file" class="input" type="file" onChange=${(e) => setFile(e.target.files[0] || null)} /></div>`}
      <div class="row row-end">
        <button type="button" class="btn" onClick=${onClose}>${t("common.cancel")}</button>
        <button type="submit" class="btn btn-primary" disabled=${busy || !ready}><${Icon} name="send" />${t("common.send")}</button>
      </div>
    </form>
  <//>`;
}
