// The dossier's documents (seed 000 § 2.2.5, 3.1, 4.1): list by type, add with a progress
// bar, a viewer that shows several documents side by side with brightness / contrast /
// colour adjustment (DICOM and PDF through their PNG preview), signature stamped at a position
// dragged on the page, the PDF report, secure sending (MSSanté or vault), ZIP export.
import { api, isMissing, uploadWithProgress } from "../api.js";
import { Alert, Dialog, Empty, errorMessage, toast } from "../components.js";
import { formatDateTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useRef, useState } from "../lib.js";

const base = (d) => `/api/v1/dossiers/${d.dossier_id}/documents/${d.id}`;
const isImage = (d) => (d.content_type || "").startsWith("image/");
const viewSrc = (d) => (isImage(d) ? `${base(d)}/content?inline=1` : `${base(d)}/preview`);
const canView = (d) => isImage(d) || d.has_preview;
const stampable = (d) => d.content_type === "application/pdf" || d.content_type === "image/png" || d.content_type === "image/jpeg";

function formatSize(n) {
  if (n > 1e6) return `${(n / 1e6).toFixed(1).replace(".", ",")} Mo`;
  return `${Math.max(1, Math.round(n / 1e3))} ko`;
}

function ViewerPane({ doc, onClose }) {
  const img = useRef(null);
  const [b, setB] = useState(100);
  const [c, setC] = useState(100);
  const [s, setS] = useState(100);
  useEffect(() => {
    if (img.current) img.current.style.filter = `brightness(${b}%) contrast(${c}%) saturate(${s}%)`;
  }, [b, c, s]);
  const slider = (id, label, v, set) => html`<label class="adjust" for=${id}><span>${label}</span>
    <input id=${id} type="range" min="20" max="250" value=${v} onInput=${(e) => set(Number(e.target.value))} /></label>`;
  return html`<figure class="viewer-pane">
    <figcaption class="row-between"><strong>${doc.filename}</strong>
      <button type="button" class="btn btn-ghost btn-icon btn-sm" aria-label=${t("docs.close_view", { name: doc.filename })} onClick=${onClose}><${Icon} name="x" /></button></figcaption>
    <div class="viewer-img"><img ref=${img} src=${viewSrc(doc)} alt=${doc.filename} /></div>
    <div class="adjusts">
      ${slider(`b-${doc.id}`, t("docs.brightness"), b, setB)}
      ${slider(`c-${doc.id}`, t("docs.contrast"), c, setC)}
      ${slider(`s-${doc.id}`, t("docs.colour"), s, setS)}
      <button type="button" class="btn btn-sm" onClick=${() => (setB(100), setC(100), setS(100))}>${t("docs.reset")}</button>
    </div>
  </figure>`;
}

function StampDialog({ doc, onClose, onDone }) {
  const area = useRef(null);
  const box = useRef(null);
  const [pos, setPos] = useState({ x: 0.6, y: 0.8 });
  const [error, setError] = useState(null);
  const width = 0.25;
  useEffect(() => {
    if (box.current) {
      box.current.style.left = `${pos.x * 100}%`;
      box.current.style.top = `${pos.y * 100}%`;
      box.current.style.width = `${width * 100}%`;
    }
  }, [pos, doc]);
  const move = (e) => {
    const r = area.current.getBoundingClientRect();
    const x = Math.min(1 - width, Math.max(0, (e.clientX - r.left) / r.width - width / 2));
    const y = Math.min(0.95, Math.max(0, (e.clientY - r.top) / r.height - 0.03));
    setPos({ x, y });
  };
  const onDown = (e) => {
    e.preventDefault();
    move(e);
    const up = () => window.removeEventListener("pointermove", move);
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up, { once: true });
  };
  const onKey = (e) => {
    const step = 0.02;
    const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
    if (!d) return;
    e.preventDefault();
    setPos((p) => ({ x: Math.min(1 - width, Math.max(0, p.x + d[0])), y: Math.min(0.95, Math.max(0, p.y + d[1])) }));
  };
  const apply = async () => {
    setError(null);
    try {
      await api.post(`/dossiers/${doc.dossier_id}/documents/${doc.id}/stamp`, { pages: "all", x: pos.x, y: pos.y, width });
      toast(t("docs.stamped"));
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return html`<${Dialog} open=${!!doc} title=${t("docs.stamp_title")} onClose=${onClose}
    footer=${html`<button type="button" class="btn" onClick=${onClose}>${t("common.close")}</button>
      <button type="button" class="btn btn-primary" onClick=${apply}><${Icon} name="pen" />${t("dossier.sign")}</button>`}>
    <p class="small muted">${t("docs.stamp_help")}</p>
    <${Alert}>${error && errorMessage(error)}<//>
    ${doc && html`<div class="stamp-area" ref=${area} onPointerDown=${onDown}>
      <img src=${viewSrc(doc)} alt=${doc.filename} draggable="false" />
      <div class="stamp-box" ref=${box} tabindex="0" role="slider" aria-label=${t("docs.stamp_position")} aria-valuetext=${`${Math.round(pos.x * 100)} %, ${Math.round(pos.y * 100)} %`} onKeyDown=${onKey}>
        <img src="/api/v1/me/signature" alt="" draggable="false" /></div>
    </div>`}
  <//>`;
}

function SendDialog({ doc, onClose }) {
  const [channel, setChannel] = useState("mss");
  const [mss, setMss] = useState("");
  const [email, setEmail] = useState("");
  const [phone, setPhone] = useState("");
  const [message, setMessage] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const send = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = { document_id: doc.id, channel, message };
      if (channel === "mss") body.mss_recipients = mss.split(/[\s,;]+/).filter(Boolean);
      else body.vault_recipients = [{ email: email.trim(), phone: phone.trim() }];
      const r = await api.post(`/dossiers/${doc.dossier_id}/send`, body);
      toast(t("docs.sent", { to: r.sent_to.join(", ") }));
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Dialog} open=${!!doc} title=${t("docs.send_title")} onClose=${onClose}>
    ${doc && html`<form onSubmit=${send}>
      <p class="small"><strong>${doc.filename}</strong></p>
      <${Alert}>${error && errorMessage(error)}<//>
      <fieldset><legend>${t("docs.send_channel")}</legend><div class="choice-list">
        <label class=${`choice ${channel === "mss" ? "selected" : ""}`}><input type="radio" name="ch" checked=${channel === "mss"} onChange=${() => setChannel("mss")} />
          <span><span class="choice-title">${t("docs.send_mss")}</span><br /><span class="choice-sub">${t("docs.send_mss_hint")}</span></span></label>
        <label class=${`choice ${channel === "vault" ? "selected" : ""}`}><input type="radio" name="ch" checked=${channel === "vault"} onChange=${() => setChannel("vault")} />
          <span><span class="choice-title">${t("docs.send_vault")}</span><br /><span class="choice-sub">${t("docs.send_vault_hint")}</span></span></label>
      </div></fieldset>
      ${channel === "mss"
        ? html`<div class="field"><label for="mss-to">${t("docs.mss_to")}</label><input id="mss-to" class="input" value=${mss} onInput=${(e) => setMss(e.target.value)} required placeholder="prenom.nom@medecin.mssante.fr" /></div>`
        : html`<div class="field"><label for="v-email">${t("login.email")}</label><input id="v-email" class="input" type="email" value=${email} onInput=${(e) => setEmail(e.target.value)} required /></div>
          <div class="field"><label for="v-phone">${t("docs.vault_phone")}</label><input id="v-phone" class="input" type="tel" value=${phone} onInput=${(e) => setPhone(e.target.value)} required /></div>`}
      <div class="field"><label for="send-msg">${t("docs.message")}</label><textarea id="send-msg" class="input" value=${message} onInput=${(e) => setMessage(e.target.value)} maxlength="2000"></textarea></div>
      <button type="submit" class="btn btn-primary" disabled=${busy}><${Icon} name="send" />${t("common.send")}</button>
    </form>`}
  <//>`;
}

export function DocumentsPanel({ dossier, canAdd, canReport }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  const [progress, setProgress] = useState(null);
  const [viewing, setViewing] = useState([]);
  const [stamp, setStamp] = useState(null);
  const [sending, setSending] = useState(null);
  const [busy, setBusy] = useState(false);
  const input = useRef(null);
  const bar = useRef(null);
  const load = () =>
    api
      .get(`/dossiers/${dossier.id}/documents`)
      .then((r) => (setList(r.categories || []), setError(null)))
      .catch((err) => (setList([]), setError(isMissing(err) ? { code: "unavailable_feature" } : err)));
  useEffect(() => {
    load();
  }, [dossier.id]);
  useEffect(() => {
    if (bar.current && progress !== null) bar.current.style.width = `${Math.round(progress * 100)}%`;
  }, [progress]);
  const add = async (e) => {
    const files = [...e.target.files];
    e.target.value = "";
    for (const file of files) {
      const form = new FormData();
      form.append("file", file, file.name);
      setProgress(0);
      try {
        await uploadWithProgress(`/dossiers/${dossier.id}/documents`, form, setProgress);
        toast(t("docs.added", { name: file.name }));
      } catch (err) {
        setError(err);
      }
    }
    setProgress(null);
    load();
  };
  const report = async () => {
    setBusy(true);
    setError(null);
    try {
      const doc = await api.post(`/dossiers/${dossier.id}/report`);
      toast(t("docs.report_done"));
      await load();
      setViewing((v) => [...v.filter((x) => x.id !== doc.id), doc]);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const toggleView = (d) => setViewing((v) => (v.some((x) => x.id === d.id) ? v.filter((x) => x.id !== d.id) : [...v, d].slice(-3)));
  return html`<section class="card" aria-labelledby="docs-title">
    <div class="card-header row-between"><h2 id="docs-title">${t("dossier.documents")}</h2>
      <div class="row">
        ${canAdd && html`<button type="button" class="btn btn-sm btn-primary" onClick=${() => input.current.click()}><${Icon} name="plus" />${t("docs.add")}</button>`}
        <a class="btn btn-sm" href=${`/api/v1/dossiers/${dossier.id}/export`} download><${Icon} name="download" />${t("docs.export")}</a>
      </div></div>
    <input ref=${input} type="file" multiple class="visually-hidden" aria-label=${t("docs.add")} onChange=${add} />
    <div class="card-body">
      <${Alert}>${error && errorMessage(error)}<//>
      ${progress !== null && html`<div class="field"><span class="label">${t("docs.uploading")}</span>
        <div class="meter upload-meter" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=${Math.round(progress * 100)}><span ref=${bar}></span></div></div>`}
      ${canReport && html`<p><button type="button" class="btn btn-sm" disabled=${busy} onClick=${report}><${Icon} name="file" />${t("docs.report")}</button></p>`}
      ${list === null ? html`<p class="muted small">${t("common.loading")}</p>` : !list.length ? html`<${Empty} icon="file">${t("docs.none")}<//>`
        : list.map((cat) => html`<div key=${cat.code} class="doc-cat"><h3>${cat.label} (${cat.count})</h3>
          <ul class="doc-list">${cat.documents.map((d) => html`<li key=${d.id}>
            <div class="grow"><strong>${d.filename}</strong>${d.version > 1 ? html` <span class="badge badge-expertised">v${d.version}</span>` : ""}
              <div class="small muted">${d.author_label} · ${formatDateTime(d.created_at)} · ${formatSize(d.size)}</div>
              ${d.identity_warning && html`<div class="small ko">${d.identity_warning}</div>`}</div>
            <div class="row doc-actions">
              ${canView(d) && html`<button type="button" class="btn btn-sm" aria-pressed=${viewing.some((x) => x.id === d.id) ? "true" : "false"} onClick=${() => toggleView(d)}>${t("docs.view")}</button>`}
              <a class="btn btn-sm btn-icon" href=${`${base(d)}/content`} download=${d.filename} aria-label=${t("docs.download_name", { name: d.filename })}><${Icon} name="download" /></a>
              ${canAdd && stampable(d) && html`<button type="button" class="btn btn-sm" onClick=${() => setStamp(d)}><${Icon} name="pen" />${t("docs.stamp")}</button>`}
              <button type="button" class="btn btn-sm" onClick=${() => setSending(d)}><${Icon} name="send" />${t("docs.send")}</button>
            </div></li>`)}</ul></div>`)}
    </div>
    ${viewing.length > 0 && html`<div class="viewer" aria-label=${t("docs.viewer")}>${viewing.map((d) => html`<${ViewerPane} key=${d.id} doc=${d} onClose=${() => toggleView(d)} />`)}</div>`}
    <${StampDialog} doc=${stamp} onClose=${() => setStamp(null)} onDone=${() => (setStamp(null), load())} />
    <${SendDialog} doc=${sending} onClose=${() => setSending(null)} />
  </section>`;
}
