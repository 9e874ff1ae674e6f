// DICOM in the dossier page: studies → series in the documents list, and a series viewer
// pane that scrolls through the images in instance order (mouse wheel, arrow keys,
// PageUp/PageDown, Home/End, the slider, the buttons, or a finger dragged on the image),
// frame by frame for multi-frame files, with window presets or a window dragged on the
// image. Frames are rendered by the server (GET …/preview?frame=n&wc=&ww=) and the
// neighbours of the shown image are fetched ahead into a small in-memory cache, so that
// scrolling does not wait for the network. Nothing is cached on disk (health data).
// Downloading the series as DICOM files is offered to holders of the habilitation only
// (seed 002 § 3.1.3; the server refuses the others).
import { formatBirthDate, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useMemo, useRef, useState } from "../lib.js";

// Window presets (Hounsfield units): only meaningful for CT.
export const PRESETS = [
  { id: "lung", center: -600, width: 1500 },
  { id: "bone", center: 400, width: 1800 },
  { id: "brain", center: 40, width: 80 },
  { id: "abdomen", center: 50, width: 350 },
  { id: "mediastinum", center: 40, width: 400 },
];

const AHEAD = 6; // images fetched ahead in the scrolling direction
const BEHIND = 2;
const PARALLEL = 4;
const CACHE_SIZE = 80;

/** Rendered frames as object URLs, most recently used last; a few fetches at a time. */
class FrameCache {
  constructor() {
    this.entries = new Map(); // key → {promise, url}
    this.waiting = [];
    this.running = 0;
    this.onScreen = null; // never revoked while shown
  }

  key(doc, frame, win) {
    return `${doc}|${frame}|${win ? `${win.center}/${win.width}` : "file"}`;
  }

  get(dossierId, img, win, urgent = false) {
    const key = this.key(img.doc, img.frame, win);
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key); // refresh its place
      this.entries.set(key, hit);
      if (urgent) this.bump(key);
      return hit.promise;
    }
    const entry = { url: null, key };
    entry.promise = new Promise((resolve, reject) => {
      entry.start = () => this.fetch(dossierId, img, win, entry).then(resolve, reject);
    });
    entry.promise.catch(() => this.entries.get(key) === entry && this.entries.delete(key));
    this.entries.set(key, entry);
    if (urgent) this.waiting.unshift(entry);
    else this.waiting.push(entry);
    this.next();
    this.trim();
    return entry.promise;
  }

  bump(key) {
    const i = this.waiting.findIndex((e) => e.key === key);
    if (i > 0) this.waiting.unshift(...this.waiting.splice(i, 1));
  }

  next() {
    while (this.running < PARALLEL && this.waiting.length) {
      const entry = this.waiting.shift();
      this.running += 1;
      entry.start();
      entry.promise.catch(() => {}).finally(() => {
        this.running -= 1;
        this.next();
      });
    }
  }

  async fetch(dossierId, img, win, entry) {
    const q = new URLSearchParams({ frame: String(img.frame) });
    if (win) {
      q.set("wc", String(win.center));
      q.set("ww", String(win.width));
    }
    const r = await fetch(`/api/v1/dossiers/${dossierId}/documents/${img.doc}/preview?${q}`, { credentials: "same-origin" });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw Object.assign(new Error(body.detail || `HTTP ${r.status}`), { status: r.status, code: body.code });
    }
    const blob = await r.blob();
    entry.url = URL.createObjectURL(blob);
    const num = (h) => (r.headers.get(h) === null ? null : Number(r.headers.get(h)));
    return { url: entry.url, center: num("X-Window-Center"), width: num("X-Window-Width") };
  }

  trim() {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= CACHE_SIZE) break;
      if (!entry.url || entry.url === this.onScreen) continue; // still loading, or shown
      URL.revokeObjectURL(entry.url);
      this.entries.delete(key);
    }
  }

  clear() {
    for (const entry of this.entries.values()) if (entry.url) URL.revokeObjectURL(entry.url);
    this.entries.clear();
    this.waiting = [];
  }
}

/** Every image of a series in scrolling order: one per frame of each instance. */
export function seriesImages(series) {
  const out = [];
  for (const it of series.items) {
    for (let f = 1; f <= it.frames; f++) {
      out.push({ doc: it.document_id, frame: f, frames: it.frames, instance: it.instance_number });
    }
  }
  return out;
}

/** "1 image", "5 images" (the catalogues have no plural rules). */
export const count = (what, n) =>
  ({
    files: n === 1 ? t("docs2.files_one") : t("docs2.files_count", { n }),
    images: n === 1 ? t("docs2.images_one") : t("docs2.images_count", { n }),
    queued: n === 1 ? t("docs2.queued_one") : t("docs2.queued_count", { n }),
  })[what];

const fmt = (n) => (n === null || n === undefined || Number.isNaN(n) ? "–" : String(Math.round(n)));

/** The series viewer: one pane of the side-by-side viewer. */
export function SeriesPane({ dossierId, study, series, onClose, canDownload = false }) {
  const images = useMemo(() => seriesImages(series), [series]);
  const cache = useRef(null);
  if (!cache.current) cache.current = new FrameCache();
  const [index, setIndex] = useState(0);
  const [win, setWin] = useState(null); // null: the file's own window
  const [reqWin, setReqWin] = useState(null);
  const [preset, setPreset] = useState("file");
  const [tool, setTool] = useState("scroll");
  const [shown, setShown] = useState(null); // {index, url, center, width}
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(false);
  const direction = useRef(1);
  const wheel = useRef(0);
  const drag = useRef(null);
  const viewport = useRef(null);
  const pane = useRef(null);
  const n = images.length;
  const isCT = series.modality === "CT";
  const uid = series.series_uid.replace(/[^a-zA-Z0-9]/g, "").slice(-12);

  useEffect(() => () => cache.current.clear(), []);

  const go = (i) => {
    const next = Math.max(0, Math.min(n - 1, i));
    setIndex((cur) => {
      if (next !== cur) direction.current = next > cur ? 1 : -1;
      return next;
    });
  };

  // A window dragged on the image asks the server at most every 120 ms.
  useEffect(() => {
    const id = setTimeout(() => setReqWin(win), drag.current ? 120 : 0);
    return () => clearTimeout(id);
  }, [win]);

  // Show the current image as soon as it is there; fetch its neighbours behind it.
  useEffect(() => {
    let live = true;
    const img = images[index];
    if (!img) return undefined;
    setLoading(true);
    cache.current
      .get(dossierId, img, reqWin, true)
      .then((r) => {
        if (!live) return;
        setShown({ index, ...r });
        setError(null);
        setLoading(false);
        cache.current.onScreen = r.url;
        cache.current.trim();
      })
      .catch((err) => live && (setError(err), setLoading(false)));
    const d = direction.current;
    for (let k = 1; k <= AHEAD; k++) {
      const j = index + d * k;
      if (j >= 0 && j < n) cache.current.get(dossierId, images[j], reqWin).catch(() => {});
    }
    for (let k = 1; k <= BEHIND; k++) {
      const j = index - d * k;
      if (j >= 0 && j < n) cache.current.get(dossierId, images[j], reqWin).catch(() => {});
    }
    return () => {
      live = false;
    };
  }, [index, reqWin, images]);

  const cur = images[index];
  const page = Math.max(1, Math.round(n / 10));
  const onKey = (e) => {
    const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: page, PageUp: -page }[e.key];
    if (step) go(index + step);
    else if (e.key === "Home") go(0);
    else if (e.key === "End") go(n - 1);
    else return;
    e.preventDefault();
  };
  const onWheel = (e) => {
    e.preventDefault();
    const dy = e.deltaMode === 1 ? e.deltaY * 40 : e.deltaY;
    if (Math.abs(dy) >= 50) {
      wheel.current = 0; // a mouse wheel notch: one image
      go(index + Math.sign(dy));
      return;
    }
    wheel.current += dy; // a touchpad: small deltas add up
    if (Math.abs(wheel.current) >= 50) {
      go(index + Math.sign(wheel.current));
      wheel.current = 0;
    }
  };
  const startWindow = () => {
    if (win) return win;
    if (shown && shown.center !== null) return { center: shown.center, width: shown.width };
    return { center: 40, width: 400 };
  };
  const onPointerDown = (e) => {
    if (e.button !== undefined && e.button !== 0) return;
    viewport.current.focus();
    viewport.current.setPointerCapture(e.pointerId);
    drag.current = { x: e.clientX, y: e.clientY, index, win: startWindow(), moved: 0 };
  };
  const onPointerMove = (e) => {
    const g = drag.current;
    if (!g) return;
    const dx = e.clientX - g.x;
    const dy = e.clientY - g.y;
    if (tool === "scroll") {
      const h = viewport.current.clientHeight || 400;
      const per = Math.max(6, Math.min(24, h / Math.max(n, 1)));
      go(g.index + Math.round(dy / per));
    } else {
      const k = Math.max(g.win.width / 300, 0.5);
      setPreset("custom");
      setWin({ center: Math.round(g.win.center + dy * k), width: Math.max(1, Math.round(g.win.width + dx * k * 2)) });
    }
  };
  const onPointerUp = () => {
    drag.current = null;
    setReqWin(win);
  };
  const choosePreset = (id) => {
    setPreset(id);
    const p = PRESETS.find((x) => x.id === id);
    setWin(p ? { center: p.center, width: p.width } : null);
  };
  const reset = () => {
    setPreset("file");
    setWin(null);
    go(0);
  };
  const shownWin = win || (shown && shown.center !== null ? shown : null);
  const label = t("docs2.image_of", { n: index + 1, total: n });
  const title = [series.number && t("docs2.series_n", { n: series.number }), series.description].filter(Boolean).join(" · ");

  const toggleFullscreen = () => {
    const el = pane.current;
    if (document.fullscreenElement === el) document.exitFullscreen();
    else (el.requestFullscreen || el.webkitRequestFullscreen).call(el);
    viewport.current.focus();
  };
  const canFullscreen = typeof document !== "undefined" && (document.fullscreenEnabled || document.webkitFullscreenEnabled);
  return html`<figure class="viewer-pane dicom-pane" ref=${pane} aria-label=${t("docs2.series_viewer", { name: title })}>
    <figcaption class="dicom-caption">
      <span class="dicom-title"><strong>${title || t("docs2.series")}</strong>
        <span class="small muted">${study.description}${study.study_date ? ` · ${formatBirthDate(study.study_date)}` : ""}</span></span>
      ${canDownload && html`<a class="btn btn-ghost btn-icon btn-sm" href=${`/api/v1/dossiers/${dossierId}/dicom-series/${encodeURIComponent(series.series_uid)}`} download
        aria-label=${t("results.download_series", { name: title || t("docs2.series") })} title=${t("results.download_series", { name: title || t("docs2.series") })}><${Icon} name="download" /></a>`}
      ${canFullscreen && html`<button type="button" class="btn btn-ghost btn-icon btn-sm" aria-label=${t("docs2.fullscreen")} title=${t("docs2.fullscreen")} onClick=${toggleFullscreen}>
        <svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M4 9V4h5M15 4h5v5M20 15v5h-5M9 20H4v-5" /></svg></button>`}
      <button type="button" class="btn btn-ghost btn-icon btn-sm" aria-label=${t("docs.close_view", { name: title })} onClick=${onClose}><${Icon} name="x" /></button>
    </figcaption>
    <div class=${`dicom-viewport tool-${tool}`} ref=${viewport} tabindex="0" role="group"
      aria-roledescription=${t("docs2.viewport_role")} aria-label=${label} aria-describedby=${`dicom-help-${uid}`}
      onKeyDown=${onKey} onWheel=${onWheel} onPointerDown=${onPointerDown} onPointerMove=${onPointerMove}
      onPointerUp=${onPointerUp} onPointerCancel=${onPointerUp}>
      ${shown && html`<img src=${shown.url} alt=${label} draggable="false" class="dicom-img"
        data-index=${shown.index + 1} data-instance=${images[shown.index] ? images[shown.index].instance ?? "" : ""}
        data-frame=${images[shown.index] ? images[shown.index].frame : ""} data-document=${images[shown.index] ? images[shown.index].doc : ""} />`}
      <div class="dicom-overlay tl">${series.modality}${series.number ? ` · ${t("docs2.series_n", { n: series.number })}` : ""}<br />${series.description}</div>
      <div class="dicom-overlay tr">${study.patient_name ? study.patient_name.replace(/\^/g, " ") : ""}</div>
      <div class="dicom-overlay bl"><span class="dicom-count">${label}</span>
        ${cur && cur.instance !== null && cur.instance !== undefined ? html`<br />${t("docs2.instance", { n: cur.instance })}` : ""}
        ${cur && cur.frames > 1 ? html`<br />${t("docs2.frame_of", { n: cur.frame, total: cur.frames })}` : ""}</div>
      <div class="dicom-overlay br">${shownWin ? t("docs2.window_values", { c: fmt(shownWin.center), w: fmt(shownWin.width) }) : ""}</div>
      ${loading && html`<span class="dicom-loading" aria-hidden="true"></span>`}
      ${error && html`<div class="dicom-error" role="alert">${t("docs2.image_error")}</div>`}
    </div>
    <p class="visually-hidden" id=${`dicom-help-${uid}`}>${t("docs2.viewport_help")}</p>
    <div class="dicom-nav">
      <button type="button" class="btn btn-icon" aria-label=${t("docs2.previous_image")} disabled=${index === 0} onClick=${() => go(index - 1)}>
        <svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M15 5l-7 7 7 7" /></svg></button>
      <input type="range" class="dicom-slider" min="1" max=${n} step="1" value=${index + 1} aria-label=${t("docs2.image")}
        aria-valuetext=${label} onInput=${(e) => go(Number(e.target.value) - 1)} />
      <button type="button" class="btn btn-icon" aria-label=${t("docs2.next_image")} disabled=${index >= n - 1} onClick=${() => go(index + 1)}>
        <svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M9 5l7 7-7 7" /></svg></button>
      <output class="dicom-counter" aria-live="off">${index + 1} / ${n}</output>
    </div>
    <div class="dicom-tools">
      <label class="dicom-field"><span>${t("docs2.window")}</span>
        <select class="input" value=${preset} onChange=${(e) => choosePreset(e.target.value)}>
          <option value="file">${t("docs2.preset_file")}</option>
          ${isCT && PRESETS.map((p) => html`<option value=${p.id}>${t(`docs2.preset_${p.id}`)} (${p.center} / ${p.width})</option>`)}
          ${preset === "custom" && html`<option value="custom">${t("docs2.preset_custom")}</option>`}
        </select></label>
      <div class="segmented dicom-toolbar" role="group" aria-label=${t("docs2.drag_tool")}>
        <button type="button" aria-pressed=${tool === "scroll" ? "true" : "false"} onClick=${() => setTool("scroll")}>${t("docs2.tool_scroll")}</button>
        <button type="button" aria-pressed=${tool === "window" ? "true" : "false"} onClick=${() => setTool("window")}>${t("docs2.tool_window")}</button>
      </div>
      <button type="button" class="btn btn-sm" onClick=${reset}>${t("docs.reset")}</button>
    </div>
  </figure>`;
}

/** The DICOM category of the documents list: exams, their series, and their files. */
export function DicomStudies({ category, openSeries, onToggleSeries, renderFiles }) {
  const studies = category.studies || [];
  return html`<div class="dicom-studies">
    ${studies.map((st) => {
      const docs = category.documents.filter((d) => st.document_ids.includes(d.id));
      return html`<section class="dicom-study" key=${st.study_uid} aria-label=${st.description || t("docs2.study")}>
        <div class="dicom-study-head">
          <span class="dicom-badge" aria-hidden="true">${(st.modalities || []).join(" ") || "DICOM"}</span>
          <div class="grow"><strong>${st.description || t("docs2.study")}</strong>
            <div class="small muted">${[st.study_date && formatBirthDate(st.study_date), count("files", st.instances)].filter(Boolean).join(" · ")}</div>
            ${st.identity_mismatch && html`<div class="small ko">${t("docs2.identity_pending")}</div>`}</div>
        </div>
        <ul class="dicom-series-list">${(st.series || []).map((se) => {
          const open = openSeries(se.series_uid);
          const name = [se.number && t("docs2.series_n", { n: se.number }), se.description].filter(Boolean).join(" · ") || t("docs2.series");
          return html`<li key=${se.series_uid} class=${open ? "open" : ""}>
            <div class="grow"><span class="dicom-series-name">${name}</span>
              <div class="small muted">${[se.modality, count("images", se.images), se.images !== se.instances ? count("files", se.instances) : ""].filter(Boolean).join(" · ")}</div></div>
            <button type="button" class="btn btn-sm" aria-pressed=${open ? "true" : "false"} onClick=${() => onToggleSeries(st, se)}>
              ${open ? t("docs2.close_series") : t("docs2.open_series")}</button>
          </li>`;
        })}</ul>
        <details class="dicom-files"><summary>${t("docs2.exam_files", { n: docs.length })}</summary>${renderFiles(docs)}</details>
      </section>`;
    })}
  </div>`;
}
