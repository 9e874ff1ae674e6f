// The activity view (home, seed 000 2.1): my dossiers with the seed's columns, search and
// filters, urgent first; the rooms I may enter with their occupancy; my last searches; and
// « Utiliser un n° de dossier » (seed 002 2.2): a dossier opened by its number and the
// patient's birth date; above them, the unseen imaging results (seed 002 3.1.1, results.js).
import { api, isMissing } from "../api.js";
import { Alert, Empty, errorMessage, useTitle } from "../components.js";
import { formatBirthDate, formatDateTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useMemo, useRef, useState } from "../lib.js";
import {
  STATES,
  dossierPatient,
  dossierRequester,
  dossierUpdated,
  normalizeDossierNumber,
  patientName,
  roomOccupancy,
  sexSymbol,
  stateLabel,
} from "../model.js";
import { recentSearches, rememberSearch } from "../recent.js";
import { Link, navigate } from "../router.js";
import { RcpList } from "./rcp.js";
import { UnseenResults } from "./results.js";

function useDebounced(value, ms) {
  const [v, setV] = useState(value);
  useEffect(() => {
    const id = setTimeout(() => setV(value), ms);
    return () => clearTimeout(id);
  }, [value, ms]);
  return v;
}

/** Urgent first, then the most recently modified. */
export function sortDossiers(list) {
  return [...list].sort((a, b) => {
    if (!!b.urgent !== !!a.urgent) return b.urgent ? 1 : -1;
    return String(dossierUpdated(b) || "").localeCompare(String(dossierUpdated(a) || ""));
  });
}

function matches(d, q) {
  if (!q) return true;
  const number = normalizeDossierNumber(q);
  if (number && d.number === number) return true;
  const p = dossierPatient(d);
  const hay = [patientName(p), p.birth_date, p.ipp, p.ins, dossierRequester(d), d.number, d.reference]
    .filter(Boolean)
    .join(" ")
    .toLowerCase();
  return q
    .toLowerCase()
    .split(/\s+/)
    .every((w) => hay.includes(w));
}

function DossierTable({ dossiers, query }) {
  const open = (d) => {
    const p = dossierPatient(d);
    if (query && query.trim().length >= 2) {
      rememberSearch({ q: query.trim(), name: patientName(p), sex: p.sex, birth_date: p.birth_date, dossier_id: d.id });
    }
    navigate(`/app/dossiers/${d.id}`);
  };
  return html`<div class="table-wrap"><table class="table responsive">
    <caption class="visually-hidden">${t("activity.dossiers")}</caption>
    <thead><tr>
      <th scope="col">${t("activity.col_patient")}</th>
      <th scope="col">${t("activity.col_sex")}</th>
      <th scope="col">${t("activity.col_requester")}</th>
      <th scope="col">${t("activity.col_modified")}</th>
      <th scope="col">${t("activity.col_state")}</th>
      <th scope="col" class="actions">${t("activity.col_actions")}</th>
    </tr></thead>
    <tbody>
      ${dossiers.map((d) => {
        const p = dossierPatient(d);
        const sex = sexSymbol(p.sex);
        return html`<tr key=${d.id} class=${`clickable ${d.urgent ? "is-urgent" : ""}`} onClick=${() => open(d)}>
          <td data-label=${t("activity.col_patient")}>
            <a class="patient-name" href=${`/app/dossiers/${d.id}`} onClick=${(e) => { e.preventDefault(); e.stopPropagation(); open(d); }}>${patientName(p)}</a>
            ${p.birth_date && html`<div class="small muted">${t("patient.born", { date: formatBirthDate(p.birth_date) })}</div>`}
            ${d.number && html`<div class="dossier-no small">${t("activity.number", { number: d.number })}</div>`}
          </td>
          <td data-label=${t("activity.col_sex")}><span class="sex" title=${sex.label} aria-label=${sex.label}>${sex.symbol}</span></td>
          <td data-label=${t("activity.col_requester")}>${dossierRequester(d)}</td>
          <td data-label=${t("activity.col_modified")}>${formatDateTime(dossierUpdated(d))}</td>
          <td data-label=${t("activity.col_state")}>
            <span class=${`badge badge-${d.state}`}>${stateLabel(d.state)}</span>
            ${d.urgent && html` <span class="badge badge-urgent">${t("dossier.urgent")}</span>`}
            ${d.by_number && html` <span class="badge badge-by-number" title=${t("activity.by_number_title")}>${t("activity.by_number")}</span>`}
            ${d.teleconsultation_step_label && html`<br /><span class=${`badge badge-tlc-${d.teleconsultation_step}`}>${d.teleconsultation_step_label}</span>
              ${d.teleconsultation_at && d.teleconsultation_step === "planned" && html` <span class="small muted">${formatDateTime(d.teleconsultation_at)}</span>`}`}
          </td>
          <td class="actions">
            <button type="button" class="btn btn-sm" onClick=${(e) => { e.stopPropagation(); open(d); }}>
              <${Icon} name="folder" />${t("activity.open")}</button>
          </td>
        </tr>`;
      })}
    </tbody>
  </table></div>`;
}

function Rooms({ rooms, error }) {
  if (error) return html`<div class="card-body"><${Alert} kind="info">${error}<//></div>`;
  if (rooms === null) return html`<div class="card-body muted">${t("common.loading")}</div>`;
  if (!rooms.length) return html`<${Empty} icon="video">${t("activity.no_rooms")}<//>`;
  return html`<ul class="room-list">
    ${rooms.map((r) => {
      const occ = roomOccupancy(r);
      return html`<li class="room-item" key=${r.id}>
        <div class="room-name">${r.name || r.title}</div>
        <div class="occupancy">
          <span class=${`dot ${occ.count ? "on" : ""}`} aria-hidden="true"></span>
          <span>${occ.count
            ? t(occ.count === 1 ? "room.occupancy_one" : "room.occupancy_many", { count: occ.count, names: occ.names.join(", ") })
            : t("room.empty")}</span>
        </div>
        <${Link} class="btn btn-primary btn-sm" href=${`/app/rooms/${r.id}`}><${Icon} name="video" />${t("room.enter")}<//>
      </li>`;
    })}
  </ul>`;
}

function RecentSearches({ onPick }) {
  const items = recentSearches();
  if (!items.length) return html`<p class="card-body small muted">${t("activity.recent_empty")}</p>`;
  return html`<ul class="recent-list">
    ${items.map((x) => {
      const sex = sexSymbol(x.sex);
      return html`<li key=${x.at}><button type="button" onClick=${() => onPick(x)}>
        ${x.name ? html`<span class="sex" aria-label=${sex.label}>${sex.symbol}</span><span><strong>${x.name}</strong>
          ${x.birth_date && html`<br /><span class="muted">${formatBirthDate(x.birth_date)}</span>`}</span>`
          : html`<${Icon} name="search" /><span>${x.q}</span>`}
      </button></li>`;
    })}
  </ul>`;
}

/** The message for a refused lookup: never says whether the number exists. */
function lookupError(err) {
  if (err.status === 404) return t("lookup.not_found");
  if (err.status === 429) {
    const secs = Number((err.body && err.body.retry_after) || 0);
    return t("lookup.rate_limited", { minutes: Math.max(1, Math.ceil(secs / 60)) });
  }
  if (err.code === "invalid_dossier_number") return t("lookup.invalid_number");
  if (err.code === "lookup_practitioners_only") return t("lookup.practitioners_only");
  return errorMessage(err);
}

/** « Utiliser un n° de dossier »: number and birth date → the dossier page (read access). */
function NumberLookup({ initialNumber }) {
  const [number, setNumber] = useState(initialNumber || "");
  const [birth, setBirth] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const numberInput = useRef(null);
  useEffect(() => {
    if (numberInput.current) numberInput.current.focus();
  }, []);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    const wanted = normalizeDossierNumber(number);
    if (!wanted) {
      setError(t("lookup.invalid_number"));
      numberInput.current && numberInput.current.focus();
      return;
    }
    setBusy(true);
    try {
      const found = await api.post("/dossiers/lookup", { number: wanted, birth_date: birth });
      rememberSearch({ q: wanted, dossier_id: found.dossier_id });
      navigate(`/app/dossiers/${found.dossier_id}`);
    } catch (err) {
      setError(lookupError(err));
      setBusy(false);
    }
  };
  return html`<form id="number-lookup" class="number-lookup" aria-labelledby="lookup-title" onSubmit=${submit}>
    <h3 id="lookup-title" class="visually-hidden">${t("lookup.title")}</h3>
    <div class="number-lookup-fields">
      <div class="field">
        <label for="lookup-number">${t("lookup.number")}</label>
        <input id="lookup-number" ref=${numberInput} class="input mono" type="text" required value=${number}
          onInput=${(e) => setNumber(e.target.value)} placeholder="TE-2026-000123" autocomplete="off"
          autocapitalize="characters" spellcheck="false" maxlength="40" aria-describedby="lookup-number-hint"
          aria-invalid=${error === t("lookup.invalid_number") ? "true" : undefined} />
        <span id="lookup-number-hint" class="hint">${t("lookup.number_hint")}</span>
      </div>
      <div class="field">
        <label for="lookup-birth">${t("lookup.birth_date")}</label>
        <input id="lookup-birth" class="input" type="date" required value=${birth} min="1880-01-01"
          onInput=${(e) => setBirth(e.target.value)} aria-describedby="lookup-birth-hint" />
        <span id="lookup-birth-hint" class="hint">${t("lookup.birth_hint")}</span>
      </div>
      <div class="field field-action">
        <button type="submit" class="btn btn-primary" disabled=${busy}><${Icon} name="folder" />${t("lookup.submit")}</button>
      </div>
    </div>
    <p class="small muted number-lookup-note">${t("lookup.note")}</p>
    <${Alert}>${error}<//>
  </form>`;
}

const TLC_STEPS = ["planned", "done", "report_signed", "cancelled"];

export function ActivityPage({ session }) {
  useTitle(t("nav.activity"));
  const [dossiers, setDossiers] = useState(null);
  const [dossierError, setDossierError] = useState(null);
  const [rooms, setRooms] = useState(null);
  const [roomError, setRoomError] = useState(null);
  const [query, setQuery] = useState("");
  const [state, setState] = useState("");
  const [urgentOnly, setUrgentOnly] = useState(false);
  const [tlcStep, setTlcStep] = useState("");
  const [offline, setOffline] = useState(!navigator.onLine);
  const [lookupOpen, setLookupOpen] = useState(false);
  const [lookupNumber, setLookupNumber] = useState("");
  const debounced = useDebounced(query, 250);
  const canLookup = session && session.kind === "user" && session.role !== "secretary";
  const openLookup = (prefill) => {
    setLookupNumber(prefill || "");
    setLookupOpen(true);
  };

  useEffect(() => {
    const on = () => setOffline(false);
    const off = () => setOffline(true);
    window.addEventListener("online", on);
    window.addEventListener("offline", off);
    return () => {
      window.removeEventListener("online", on);
      window.removeEventListener("offline", off);
    };
  }, []);

  useEffect(() => {
    let alive = true;
    api
      .get("/dossiers", { query: { q: debounced.trim().length >= 2 ? debounced.trim() : undefined, state: state || undefined, teleconsultation: tlcStep || undefined } })
      .then((data) => alive && (setDossiers(Array.isArray(data) ? data : data.items || []), setDossierError(null)))
      .catch((err) => alive && (setDossiers([]), setDossierError(isMissing(err) ? t("activity.dossiers_unavailable") : errorMessage(err))));
    return () => {
      alive = false;
    };
  }, [debounced, state, tlcStep]);

  useEffect(() => {
    let alive = true;
    const load = () =>
      api
        .get("/rooms")
        .then((data) => alive && (setRooms(Array.isArray(data) ? data : data.items || []), setRoomError(null)))
        .catch((err) => alive && (setRooms([]), setRoomError(isMissing(err) ? t("activity.rooms_unavailable") : errorMessage(err))));
    load();
    const id = setInterval(load, 15000); // occupancy changes while the page is open
    return () => {
      alive = false;
      clearInterval(id);
    };
  }, []);

  const shown = useMemo(() => {
    if (!dossiers) return null;
    return sortDossiers(dossiers.filter((d) => (!state || d.state === state) && (!urgentOnly || d.urgent) && matches(d, debounced.trim())));
  }, [dossiers, state, urgentOnly, debounced, tlcStep]);

  const onSearchSubmit = (e) => {
    e.preventDefault();
    if (query.trim().length >= 2) rememberSearch({ q: query.trim() });
  };
  const pickRecent = (x) => (x.dossier_id ? navigate(`/app/dossiers/${x.dossier_id}`) : setQuery(x.q));
  const firstName = (session.name || "").replace(/^(Dr|Pr)\s+/, "");

  return html`
    <div class="page-head">
      <div><h1>${t("activity.title")}</h1><p>${t("activity.hello", { name: firstName })}</p></div>
      <${Link} class="btn btn-primary" href="/app/dossiers/new"><${Icon} name="plus" />${t("activity.new_request")}<//>
    </div>
    ${offline && html`<${Alert} kind="warning" title=${t("offline.title")}>${t("offline.body")}<//>`}
    ${session && session.kind === "user" && !offline && html`<${UnseenResults} />`}
    <div class="layout-2">
      <section class="card" aria-labelledby="dossiers-title">
        <div class="card-header row-between"><h2 id="dossiers-title">${t("activity.dossiers")}</h2>
          ${shown && html`<span class="small muted">${t("activity.count", { count: shown.length })}</span>`}</div>
        <form class="toolbar" role="search" onSubmit=${onSearchSubmit}>
          <div class="field search">
            <label for="dossier-search">${t("activity.search")}</label>
            <div class="search-box"><${Icon} name="search" />
              <input id="dossier-search" class="input" type="search" value=${query} placeholder=${t("activity.search_placeholder")}
                onInput=${(e) => setQuery(e.target.value)} autocomplete="off" /></div>
          </div>
          <div class="field">
            <label for="dossier-state">${t("activity.filter_state")}</label>
            <select id="dossier-state" class="input" value=${state} onChange=${(e) => setState(e.target.value)}>
              <option value="">${t("activity.all_states")}</option>
              ${STATES.map((s) => html`<option value=${s}>${stateLabel(s)}</option>`)}
            </select>
          </div>
          <div class="field">
            <label for="dossier-tlc">${t("activity.filter_tlc")}</label>
            <select id="dossier-tlc" class="input" value=${tlcStep} onChange=${(e) => setTlcStep(e.target.value)}>
              <option value="">${t("activity.all_states")}</option>
              ${TLC_STEPS.map((s) => html`<option value=${s}>${t(`tlc.step_${s}`)}</option>`)}
            </select>
          </div>
          <label class="check field"><input type="checkbox" checked=${urgentOnly} onChange=${(e) => setUrgentOnly(e.target.checked)} />
            <span>${t("activity.urgent_only")}</span></label>
        </form>
        ${canLookup && html`<div class="number-lookup-bar">
          <button type="button" class="btn btn-ghost btn-sm" aria-expanded=${lookupOpen ? "true" : "false"} aria-controls="number-lookup"
            onClick=${() => (lookupOpen ? setLookupOpen(false) : openLookup(normalizeDossierNumber(query) || ""))}>
            <${Icon} name="key" />${t("lookup.toggle")}</button>
          ${lookupOpen && html`<${NumberLookup} key=${lookupNumber} initialNumber=${lookupNumber} />`}
        </div>`}
        ${dossierError && html`<div class="card-body"><${Alert} kind="info">${dossierError}<//></div>`}
        ${shown === null ? html`<p class="card-body muted">${t("common.loading")}</p>`
          : shown.length ? html`<${DossierTable} dossiers=${shown} query=${query} />`
          : dossierError ? null
          : debounced.trim().length >= 2 && canLookup && !lookupOpen
            ? html`<div class="empty" role="status"><${Icon} name="folder" /><p>${t("activity.no_result")}
                <button type="button" class="btn-link" onClick=${() => openLookup(normalizeDossierNumber(query) || "")}>${t("activity.try_number")}</button></p></div>`
          : html`<${Empty} icon="folder">${query || state || urgentOnly || tlcStep ? t("activity.no_match") : t("activity.no_dossiers")}<//>`}
      </section>
      <div class="stack">
        ${session && session.kind === "user" && !offline && html`<${RcpList} />`}
        <section class="card" aria-labelledby="rooms-title">
          <div class="card-header"><h2 id="rooms-title">${t("activity.rooms")}</h2></div>
          <${Rooms} rooms=${rooms} error=${roomError} />
        </section>
        <section class="card" aria-labelledby="recent-title">
          <div class="card-header"><h2 id="recent-title">${t("activity.recent")}</h2></div>
          <${RecentSearches} onPick=${pickRecent} />
        </section>
      </div>
    </div>`;
}
