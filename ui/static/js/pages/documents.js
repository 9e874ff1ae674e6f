// The dossier's documents (seed 000 § 2.2.5, 3.1, 4.1): list by type, add files through a
// queue with progress (large files resumable, see upload.js), a viewer that shows several
// documents side by side with brightness / contrast / colour adjustment (PDF through its PNG
// preview), DICOM exams by study and series with a series viewer (dicom-viewer.js), signature
// stamped at a position dragged on the page, the PDF report, secure sending (MSSanté or
// vault), ZIP export.
import { api, isMissing } from "../api.js";
import { Alert, Dialog, Empty, errorMessage, toast } from "../components.js";
import { formatDateTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { getSession } from "../session.js";
import { ACTIVE, UploadQueue, forgetPending, pendingUploads, retryable, serverOffset } from "../upload.js";
import { DicomStudies, SeriesPane, count } from "./dicom-viewer.js";
import { PacsPanel } from "./pacs.js";

const base = (d) => `/api/v1/dossiers/${d.dossier_id}/documents/${d.id}`;
const isImage = (d) => (d.content_type || "").startsWith("image/");
const viewSrc = (d) => (isImage(d) ? `${base(d)}/content?inline=1` : `${base(d)}/preview`);
const canView = (d) => isImage(d) || d.has_preview;
const stampable = (d) => d.content_type === "application/pdf" || d.content_type === "image/png" || d.content_type === "image/jpeg";

function formatSize(n) {
  if (n >= 1e9) return t("docs2.size_gb", { n: (n / 1e9).toFixed(2).replace(".", t("docs2.decimal")) });
  if (n > 1e6) return t("docs2.size_mb", { n: (n / 1e6).toFixed(1).replace(".", t("docs2.decimal")) });
  return t("docs2.size_kb", { n: Math.max(1, Math.round(n / 1e3)) });
}

function formatDuration(s) {
  if (s === null || !Number.isFinite(s)) return "";
  if (s < 60) return t("docs2.eta_s", { n: Math.max(1, Math.round(s)) });
  if (s < 3600) return t("docs2.eta_min", { n: Math.round(s / 60) });
  return t("docs2.eta_h", { h: Math.floor(s / 3600), m: String(Math.round((s % 3600) / 60)).padStart(2, "0") });
}

/** A refused or failed upload, in words the user can act on. */
export function uploadError(err, name, size) {
  const code = err && err.code;
  if ((code === "too_large" || code === "upload_overflow") && err.body && err.body.max_bytes) {
    return t("docs2.err.too_large_max", { name, size: formatSize(size), max: formatSize(err.body.max_bytes) });
  }
  const key = `docs2.err.${code}`;
  const s = t(key, { name });
  return s !== key ? s : errorMessage(err);
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

const mssName = (e) => [e.first_name, e.last_name].filter(Boolean).join(" ") || e.organization || e.address;

// The MSSanté directory (imported from the Annuaire Santé): search as you type, then a list of
// matches, each a button that adds its address to the recipients.
function MssDirectoryPicker({ chosen, onAdd, onRemove }) {
  const [q, setQ] = useState("");
  const [results, setResults] = useState(null);
  const [error, setError] = useState(null);
  const seq = useRef(0);
  const run = async (text) => {
    const n = ++seq.current;
    const words = text.trim();
    if (words.length < 2) {
      setResults(null);
      return;
    }
    try {
      const r = await api.get("/mss-directory", { query: { q: words, limit: 20 } });
      if (n === seq.current) { setResults(r); setError(null); }
    } catch (err) {
      if (n === seq.current) setError(err);
    }
  };
  useEffect(() => {
    const timer = setTimeout(() => run(q), 250);
    return () => clearTimeout(timer);
  }, [q]);
  const onKey = (e) => {
    if (e.key === "Enter") { e.preventDefault(); run(q); } // Enter searches, it does not send
  };
  const isChosen = (e) => chosen.some((c) => c.address === e.address);
  return html`<div class="field mss-directory">
    <label for="mss-search">${t("docs.mss_search")}</label>
    <input id="mss-search" class="input" type="search" autocomplete="off" value=${q} onInput=${(e) => setQ(e.target.value)} onKeyDown=${onKey} aria-describedby="mss-search-hint" aria-controls="mss-results" />
    <p id="mss-search-hint" class="small muted">${t("docs.mss_search_hint")}</p>
    <${Alert}>${error && errorMessage(error)}<//>
    <div id="mss-results" role="region" aria-label=${t("docs.mss_results")} aria-live="polite">
      ${results === null ? "" : !results.length ? html`<p class="small muted">${t("docs.mss_search_none")}</p>` : html`<ul class="mss-hits">
        ${results.map((e) => html`<li key=${e.address} class=${isChosen(e) ? "selected" : ""}>
          <span class="mss-hit"><span class="choice-title">${mssName(e)}</span><br />
          <span class="choice-sub">${[e.specialty || e.profession, e.organization, [e.postcode, e.commune].filter(Boolean).join(" ")].filter(Boolean).join(" · ")}</span><br />
          <span class="choice-sub mss-address">${e.address}</span></span>
          ${isChosen(e) ? html`<span class="small">${t("docs.mss_added")}</span>` : html`<button type="button" class="btn btn-sm" onClick=${() => onAdd(e)} aria-label=${t("docs.mss_add", { name: mssName(e), address: e.address })}><${Icon} name="plus" />${t("common.add")}</button>`}</li>`)}
      </ul>`}
    </div>
    ${chosen.length ? html`<section aria-labelledby="mss-chosen"><h3 id="mss-chosen" class="small">${t("docs.mss_chosen")}</h3><ul class="mss-hits">
      ${chosen.map((e) => html`<li key=${e.address} class="selected">
        <span class="mss-hit"><span class="choice-title">${mssName(e)}</span><br /><span class="choice-sub mss-address">${e.address}</span></span>
        <button type="button" class="btn btn-sm" onClick=${() => onRemove(e)} aria-label=${t("docs.mss_remove", { name: mssName(e) })}><${Icon} name="x" />${t("common.remove")}</button></li>`)}
    </ul></section>` : ""}
  </div>`;
}

function SendDialog({ doc, onClose }) {
  const [channel, setChannel] = useState("mss");
  const [mss, setMss] = useState("");
  const [chosen, setChosen] = useState([]);
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
      if (channel === "mss") body.mss_recipients = [...new Set([...chosen.map((c) => c.address), ...mss.split(/[\s,;]+/).filter(Boolean)])];
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
        ? html`<${MssDirectoryPicker} chosen=${chosen} onAdd=${(e) => setChosen((xs) => (xs.some((x) => x.address === e.address) ? xs : [...xs, e]))} onRemove=${(e) => setChosen((xs) => xs.filter((x) => x.address !== e.address))} />
          <div class="field"><label for="mss-to">${chosen.length ? t("docs.mss_typed") : t("docs.mss_to")}</label><input id="mss-to" class="input" value=${mss} onInput=${(e) => setMss(e.target.value)} required=${!chosen.length} placeholder="prenom.nom@medecin.mssante.fr" /></div>`
        : html`<div class="field"><label for="v-email">${t("login.email")}</label><input id="v-email" class="input" type="email" value=${email} onInput=${(e) => setEmail(e.target.value)} required /></div>
          <div class="field"><label for="v-phone">${t("docs.vault_phone")}</label><input id="v-phone" class="input" type="tel" value=${phone} onInput=${(e) => setPhone(e.target.value)} required /></div>`}
      <div class="field"><label for="send-msg">${t("docs.message")}</label><textarea id="send-msg" class="input" value=${message} onInput=${(e) => setMessage(e.target.value)} maxlength="2000"></textarea></div>
      <button type="submit" class="btn btn-primary" disabled=${busy}><${Icon} name="send" />${t("common.send")}</button>
    </form>`}
  <//>`;
}

function UploadRow({ item, queue, now }) {
  const bar = useRef(null);
  const busy = ACTIVE.has(item.state);
  const hashing = item.state === "hashing";
  const done = hashing ? item.hashed : item.sent;
  const pct = item.size ? Math.floor((done / item.size) * 100) : 0;
  useEffect(() => {
    if (bar.current) bar.current.style.width = `${item.state === "done" ? 100 : pct}%`;
  }, [pct, item.state]);
  const wait = item.retryAt ? Math.max(0, Math.ceil((item.retryAt - now) / 1000)) : 0;
  const status = {
    queued: t("docs2.st_queued"),
    starting: t("docs2.st_starting"),
    hashing: t("docs2.st_hashing"),
    uploading: item.resumedFrom !== null ? t("docs2.st_resumed", { pct: Math.floor((item.resumedFrom / item.size) * 100) }) : t("docs2.st_uploading"),
    waiting: t("docs2.st_waiting"),
    paused: t("docs2.st_paused"),
    completing: t("docs2.st_completing"),
    done: t("docs2.st_done"),
    error: t("docs2.st_error"),
    cancelled: t("docs2.st_cancelled"),
  }[item.state];
  const canPause = item.resumable && busy && item.state !== "completing";
  const canRetry = item.state === "error" && retryable(item.error); // a refusal is final
  const detail = [
    hashing ? t("docs2.hash_progress", { pct }) : item.state === "queued" ? formatSize(item.size) : `${formatSize(item.sent)} / ${formatSize(item.size)} · ${pct} %`,
    item.state === "uploading" && item.speed > 0 ? t("docs2.speed", { v: formatSize(item.speed) }) : "",
    item.state === "uploading" && item.eta !== null ? t("docs2.remaining", { d: formatDuration(item.eta) }) : "",
  ].filter(Boolean).join(" · ");
  return html`<li class=${`upload-item st-${item.state}`} data-state=${item.state}>
    <div class="upload-head">
      <${Icon} name=${item.state === "done" ? "check" : item.state === "error" ? "alert" : "file"} />
      <strong class="upload-name">${item.name}</strong>
      <span class="upload-status" role="status">${status}</span>
    </div>
    ${item.state !== "done" && item.state !== "cancelled" && item.state !== "error" && html`
      <div class="meter upload-meter" role="progressbar" aria-label=${t("docs2.progress_of", { name: item.name })}
        aria-valuemin="0" aria-valuemax="100" aria-valuenow=${pct} aria-valuetext=${detail}><span ref=${bar}></span></div>`}
    ${item.state === "error" && html`<p class="upload-error" role="alert">${uploadError(item.error, item.name, item.size)}</p>`}
    <div class="upload-foot">
      <span class="small muted upload-detail">${item.state === "error" || item.state === "cancelled" ? formatSize(item.size) : detail}
        ${item.state === "waiting" && html` · ${t("docs2.retry_in", { n: wait })}`}</span>
      <span class="row upload-actions">
        ${item.state === "waiting" && html`<button type="button" class="btn btn-sm" onClick=${() => queue.retryNow(item)}>${t("docs2.retry_now")}</button>`}
        ${canPause && html`<button type="button" class="btn btn-sm" onClick=${() => queue.pause(item)}>${t("docs2.pause")}</button>`}
        ${(item.state === "paused" || canRetry) && html`<button type="button" class="btn btn-sm btn-primary" onClick=${() => queue.resume(item)}>${item.state === "paused" ? t("docs2.resume") : t("docs2.retry")}</button>`}
        ${(busy || item.state === "queued" || item.state === "paused" || canRetry) && html`<button type="button" class="btn btn-sm" onClick=${() => queue.cancel(item)}>${t("common.cancel")}</button>`}
        ${(item.state === "done" || item.state === "cancelled" || (item.state === "error" && !canRetry)) && html`<button type="button" class="btn btn-sm btn-ghost btn-icon" aria-label=${t("docs2.dismiss", { name: item.name })} onClick=${() => queue.dismiss(item)}><${Icon} name="x" /></button>`}
      </span>
    </div>
  </li>`;
}

function Uploads({ queue, items }) {
  const [now, setNow] = useState(Date.now());
  const waiting = items.some((i) => i.state === "waiting");
  useEffect(() => {
    if (!waiting) return undefined;
    const id = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(id);
  }, [waiting]);
  if (!items.length) return null;
  const finished = items.filter((i) => !ACTIVE.has(i.state) && i.state !== "queued" && i.state !== "paused");
  const left = items.filter((i) => i.state === "queued").length;
  return html`<section class="uploads" aria-labelledby="uploads-title">
    <div class="row-between"><h3 id="uploads-title">${t("docs2.uploads")}${left ? html` <span class="small muted">· ${count("queued", left)}</span>` : ""}</h3>
      ${finished.length === items.length && html`<button type="button" class="btn btn-sm btn-ghost" onClick=${() => queue.clearFinished()}>${t("docs2.clear")}</button>`}</div>
    <ul class="upload-list">${items.map((i) => html`<${UploadRow} key=${i.key} item=${i} queue=${queue} now=${now} />`)}</ul>
  </section>`;
}

function PendingUploads({ pending, onResume, onForget }) {
  if (!pending.length) return null;
  return html`<div class="alert alert-warning upload-pending" role="status">
    <strong>${t("docs2.pending_title")}</strong>
    <ul class="pending-list">${pending.map((p) => html`<li key=${p.key}>
      <span class="grow">${p.offset !== null
        ? t("docs2.pending_item", { name: p.name, sent: formatSize(p.offset), size: formatSize(p.size), pct: Math.floor((p.offset / p.size) * 100) })
        : t("docs2.pending_item_unknown", { name: p.name, size: formatSize(p.size) })}</span>
      <span class="row"><button type="button" class="btn btn-sm btn-primary" onClick=${onResume}>${t("docs2.resume")}</button>
        <button type="button" class="btn btn-sm" onClick=${() => onForget(p)}>${t("docs2.forget")}</button></span>
    </li>`)}</ul>
    <p class="small">${t("docs2.pending_help")}</p>
  </div>`;
}

export function DocumentsPanel({ dossier, canAdd, canReport, canSend = true }) {
  const [list, setList] = useState(null);
  const [dicomDownload, setDicomDownload] = useState(false); // the habilitation (seed 002 § 3.1.3)
  const [error, setError] = useState(null);
  const [viewing, setViewing] = useState([]); // {key, doc} or {key, study, series}
  const [stamp, setStamp] = useState(null);
  const [sending, setSending] = useState(null);
  const [busy, setBusy] = useState(false);
  const [items, setItems] = useState([]);
  const [pending, setPending] = useState([]);
  const queue = useRef(null);
  const added = useRef([]);
  const input = useRef(null);
  const session = getSession();
  const owner = session && session.id;
  const load = () =>
    api
      .get(`/dossiers/${dossier.id}/documents`)
      .then((r) => (setList(r.categories || []), setDicomDownload(!!r.dicom_download), setError(null)))
      .catch((err) => (setList([]), setError(isMissing(err) ? { code: "unavailable_feature" } : err)));
  const refreshPending = async () => {
    const q = queue.current;
    const inQueue = (rec) => q && q.items.some((i) => i.name === rec.name && i.size === rec.size && i.state !== "cancelled" && i.state !== "done");
    const recs = pendingUploads(owner, dossier.id).filter((r) => !inQueue(r));
    const out = [];
    for (const rec of recs) {
      try {
        out.push({ ...rec, offset: await serverOffset(rec.id) });
      } catch (err) {
        if (err.status === 404 || err.status === 410) localStorage.removeItem(rec.key);
        else out.push({ ...rec, offset: null });
      }
    }
    setPending(out);
  };
  useEffect(() => {
    load();
    const q = new UploadQueue({
      dossierId: dossier.id,
      owner,
      onChange: () => setItems(q.items.map((i) => ({ ...i }))),
      onDone: (doc) => {
        // One message per batch: "« x » ajouté" for one file, "n documents ajoutés" for more.
        added.current.push(doc.filename);
        if (!q.items.some((i) => ACTIVE.has(i.state) || i.state === "queued")) {
          const names = added.current;
          added.current = [];
          toast(names.length === 1 ? t("docs.added", { name: names[0] }) : t("docs2.added_many", { n: names.length }));
        }
        load();
      },
    });
    queue.current = q;
    refreshPending();
    return () => q.destroy();
  }, [dossier.id]);
  const add = (e) => {
    const files = [...e.target.files];
    e.target.value = "";
    if (!files.length) return;
    queue.current.add(files);
    refreshPending();
  };
  const forget = async (rec) => {
    try {
      await forgetPending(rec);
    } catch (err) {
      setError(err);
    }
    refreshPending();
  };
  const report = async () => {
    setBusy(true);
    setError(null);
    try {
      const doc = await api.post(`/dossiers/${dossier.id}/report`);
      toast(t("docs.report_done"));
      await load();
      setViewing((v) => [...v.filter((x) => x.key !== doc.id), { key: doc.id, doc }].slice(-3));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const toggle = (entry) => setViewing((v) => (v.some((x) => x.key === entry.key) ? v.filter((x) => x.key !== entry.key) : [...v, entry].slice(-3)));
  const toggleView = (d) => toggle({ key: d.id, doc: d });
  const toggleSeries = (study, series) => toggle({ key: `series:${series.series_uid}`, study, series });
  const isOpen = (key) => viewing.some((x) => x.key === key);
  const docRows = (docs) => html`<ul class="doc-list">${docs.map((d) => html`<li key=${d.id}>
    <div class="grow"><strong>${d.filename}</strong>${d.version > 1 ? html` <span class="badge badge-expertised">v${d.version}</span>` : ""}
      <div class="small muted">${d.author_label} · ${formatDateTime(d.created_at)} · ${formatSize(d.size)}</div>
      ${d.identity_warning && html`<div class="small ko">${d.identity_warning}</div>`}</div>
    <div class="row doc-actions">
      ${canView(d) && html`<button type="button" class="btn btn-sm" aria-pressed=${isOpen(d.id) ? "true" : "false"} onClick=${() => toggleView(d)}>${t("docs.view")}</button>`}
      ${(d.category !== "dicom" || dicomDownload) && html`<a class="btn btn-sm btn-icon" href=${`${base(d)}/content`} download=${d.filename} aria-label=${t("docs.download_name", { name: d.filename })}><${Icon} name="download" /></a>`}
      ${canAdd && stampable(d) && html`<button type="button" class="btn btn-sm" onClick=${() => setStamp(d)}><${Icon} name="pen" />${t("docs.stamp")}</button>`}
      ${canSend && html`<button type="button" class="btn btn-sm" onClick=${() => setSending(d)}><${Icon} name="send" />${t("docs.send")}</button>`}
    </div></li>`)}</ul>`;
  return html`<section class="card" aria-labelledby="docs-title">
    <div class="card-header row-between"><h2 id="docs-title">${t("dossier.documents")}</h2>
      <div class="row">
        ${canAdd && html`<button type="button" class="btn btn-sm btn-primary" onClick=${() => input.current.click()}><${Icon} name="plus" />${t("docs.add")}</button>`}
        <a class="btn btn-sm" href=${`/api/v1/dossiers/${dossier.id}/export`} download><${Icon} name="download" />${t("docs.export")}</a>
      </div></div>
    ${canAdd && html`<input ref=${input} type="file" multiple class="visually-hidden" tabindex="-1" aria-label=${t("docs.add")} onChange=${add} />`}
    <div class="card-body">
      <${Alert}>${error && errorMessage(error)}<//>
      ${canAdd && html`<${PendingUploads} pending=${pending} onResume=${() => input.current.click()} onForget=${forget} />`}
      <${Uploads} queue=${queue.current} items=${items} />
      ${canAdd && html`<${PacsPanel} dossier=${dossier} onImported=${load} />`}
      ${canReport && html`<p><button type="button" class="btn btn-sm" disabled=${busy} onClick=${report}><${Icon} name="file" />${t("docs.report")}</button></p>`}
      ${list === null ? html`<p class="muted small">${t("common.loading")}</p>` : !list.length ? html`<${Empty} icon="file">${t("docs.none")}<//>`
        : list.map((cat) => html`<div key=${cat.code} class="doc-cat"><h3>${cat.label} (${cat.count})</h3>
          ${cat.code === "dicom" && cat.studies && cat.studies.length
            ? html`<${DicomStudies} category=${cat} openSeries=${(uid) => isOpen(`series:${uid}`)} onToggleSeries=${toggleSeries} renderFiles=${docRows} />`
            : docRows(cat.documents)}</div>`)}
    </div>
    ${viewing.length > 0 && html`<div class=${`viewer viewer-${viewing.length}`} aria-label=${t("docs.viewer")}>${viewing.map((v) =>
      v.series
        ? html`<${SeriesPane} key=${v.key} dossierId=${dossier.id} study=${v.study} series=${v.series} canDownload=${dicomDownload} onClose=${() => toggle(v)} />`
        : html`<${ViewerPane} key=${v.key} doc=${v.doc} onClose=${() => toggle(v)} />`)}</div>`}
    <${StampDialog} doc=${stamp} onClose=${() => setStamp(null)} onDone=${() => (setStamp(null), load())} />
    <${SendDialog} doc=${sending} onClose=${() => setSending(null)} />
  </section>`;
}
