// RCP (réunion de concertation pluridisciplinaire), e-Staff meetings: planning with an agenda
// of dossiers (« Inscrire en RCP »), the meeting's page and the room's side panel with the
// agenda and the dossier shown now (live: rcp:current), and the « fiche RCP » the lead
// writes and signs for each dossier (filed into it as a signed PDF).
import { api } from "../api.js";
import { Alert, Dialog, Empty, errorMessage, toast, useTitle } from "../components.js";
import { formatDateTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useState } from "../lib.js";
import { onLive } from "../live.js";
import { dossierPatient, patientName } from "../model.js";
import { Link, navigate } from "../router.js";

function pad(n) {
  return String(n).padStart(2, "0");
}

function localDate(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Search the professionals' directory; `pick(user)` on a choice. */
function PeoplePicker({ id, label, pick, exclude = [] }) {
  const [q, setQ] = useState("");
  const [found, setFound] = useState([]);
  useEffect(() => {
    if (q.trim().length < 2) return setFound([]);
    const timer = setTimeout(() => api.get(`/users/directory?q=${encodeURIComponent(q.trim())}`).then(setFound).catch(() => setFound([])), 250);
    return () => clearTimeout(timer);
  }, [q]);
  const shown = found.filter((u) => !exclude.includes(u.id));
  return html`<div class="field"><label for=${id}>${label}</label>
    <input id=${id} class="input" value=${q} autocomplete="off" placeholder=${t("rcp.people_search")} onInput=${(e) => setQ(e.target.value)} />
    ${shown.length > 0 && html`<ul class="history-list rcp-found">${shown.map((u) => html`<li key=${u.id}>
      <span>${u.display_name}${u.specialty && html` <span class="small muted">· ${u.specialty}</span>`}</span>
      <button type="button" class="btn btn-sm" onClick=${() => { pick(u); setQ(""); }}>${t("common.add")}<span class="visually-hidden"> ${u.display_name}</span></button></li>`)}</ul>`}
  </div>`;
}

function DossierPicker({ add, exclude }) {
  const [q, setQ] = useState("");
  const [found, setFound] = useState([]);
  useEffect(() => {
    if (q.trim().length < 2) return setFound([]);
    const timer = setTimeout(() => api.get("/dossiers", { query: { q: q.trim() } }).then((p) => setFound((p && p.items) || [])).catch(() => setFound([])), 250);
    return () => clearTimeout(timer);
  }, [q]);
  const shown = found.filter((d) => !exclude.includes(d.id) && d.my_side !== "reader" && !d.by_number);
  return html`<div class="field"><label for="rcp-dossier-q">${t("rcp.add_dossier")}</label>
    <input id="rcp-dossier-q" class="input" type="search" value=${q} autocomplete="off" placeholder=${t("activity.search_placeholder")} onInput=${(e) => setQ(e.target.value)} />
    ${shown.length > 0 && html`<ul class="history-list rcp-found">${shown.map((d) => html`<li key=${d.id}>
      <span>${patientName(dossierPatient(d))} <span class="small muted">· ${t("activity.number", { number: d.number })}</span></span>
      <button type="button" class="btn btn-sm" onClick=${() => { add({ id: d.id, number: d.number, patient: patientName(dossierPatient(d)) }); setQ(""); }}>${t("common.add")}<span class="visually-hidden"> ${d.number}</span></button></li>`)}</ul>`}
  </div>`;
}

/** « Planifier une RCP »: /app/rcp/new (?dossier=… from a dossier: « Inscrire en RCP »). */
export function RcpPlanPage({ query, session }) {
  useTitle(t("rcp.plan"));
  const tomorrow = new Date(Date.now() + 86400000);
  const [title, setTitle] = useState("");
  const [date, setDate] = useState(localDate(tomorrow));
  const [time, setTime] = useState("13:00");
  const [duration, setDuration] = useState(60);
  const [lead, setLead] = useState({ id: session.id, display_name: session.name });
  const [invitees, setInvitees] = useState([]);
  const [agenda, setAgenda] = useState([]);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const first = query && query.get("dossier");
  useEffect(() => {
    if (!first) return;
    api.get(`/dossiers/${first}`).then((d) => setAgenda((a) => (a.some((x) => x.id === d.id) ? a : [{ id: d.id, number: d.number, patient: patientName(d.patient), question: "" }, ...a]))).catch(setError);
  }, [first]);
  const move = (i, by) => setAgenda((a) => {
    const b = [...a];
    const [x] = b.splice(i, 1);
    b.splice(i + by, 0, x);
    return b;
  });
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const m = await api.post("/rcp-meetings", {
        title,
        scheduled_at: new Date(`${date}T${time}`).toISOString(),
        duration_minutes: Number(duration),
        lead_id: lead.id,
        invitee_ids: invitees.map((u) => u.id),
        agenda: agenda.map((x) => ({ dossier_id: x.id, question: x.question })),
      });
      toast(t("rcp.planned_toast", { date: formatDateTime(m.scheduled_at) }));
      navigate(`/app/rcp/${m.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="page-head"><div><h1>${t("rcp.plan")}</h1><p>${t("rcp.plan_lead")}</p></div></div>
    <form class="card rcp-plan" onSubmit=${submit} aria-labelledby="rcp-plan-title">
      <div class="card-header"><h2 id="rcp-plan-title">${t("rcp.meeting")}</h2></div>
      <div class="card-body stack">
        <${Alert}>${error && errorMessage(error)}<//>
        <div class="field"><label for="rcp-title">${t("rcp.title_label")}</label>
          <input id="rcp-title" class="input" required maxlength="200" value=${title} placeholder=${t("rcp.title_placeholder")} onInput=${(e) => setTitle(e.target.value)} /></div>
        <div class="row wrap">
          <div class="field"><label for="rcp-date">${t("tlc.date")}</label><input id="rcp-date" class="input" type="date" required value=${date} onInput=${(e) => setDate(e.target.value)} /></div>
          <div class="field"><label for="rcp-time">${t("tlc.time")}</label><input id="rcp-time" class="input" type="time" required value=${time} onInput=${(e) => setTime(e.target.value)} /></div>
          <div class="field"><label for="rcp-duration">${t("tlc.duration")}</label><select id="rcp-duration" class="input" value=${duration} onChange=${(e) => setDuration(e.target.value)}>
            ${[30, 60, 90, 120, 180].map((m) => html`<option value=${m}>${t("tlc.minutes", { n: m })}</option>`)}</select></div>
        </div>
        <div class="stack">
          <p class="small"><span>${t("rcp.lead")} : </span><strong>${lead.display_name}</strong></p>
          <${PeoplePicker} id="rcp-lead-q" label=${t("rcp.change_lead")} pick=${setLead} exclude=${[lead.id]} />
        </div>
        <fieldset class="stack"><legend>${t("rcp.invitees")}</legend>
          ${invitees.length > 0 && html`<ul class="history-list rcp-found">${invitees.map((u) => html`<li key=${u.id}><span>${u.display_name}</span>
            <button type="button" class="btn btn-sm" onClick=${() => setInvitees(invitees.filter((x) => x.id !== u.id))}>${t("common.remove")}<span class="visually-hidden"> ${u.display_name}</span></button></li>`)}</ul>`}
          <${PeoplePicker} id="rcp-invitee-q" label=${t("rcp.invite")} pick=${(u) => setInvitees((xs) => (xs.some((x) => x.id === u.id) ? xs : [...xs, u]))} exclude=${[lead.id, ...invitees.map((u) => u.id)]} />
        </fieldset>
        <fieldset class="stack"><legend>${t("rcp.agenda")}</legend>
          ${agenda.length === 0 && html`<p class="small muted">${t("rcp.agenda_empty")}</p>`}
          <ol class="rcp-agenda-edit">${agenda.map((x, i) => html`<li key=${x.id} class="stack">
            <div class="row-between wrap"><strong>${x.patient} <span class="small muted">· ${t("activity.number", { number: x.number })}</span></strong>
              <span class="row">
                <button type="button" class="btn btn-sm" disabled=${i === 0} onClick=${() => move(i, -1)}>${t("rcp.up")}<span class="visually-hidden"> ${x.number}</span></button>
                <button type="button" class="btn btn-sm" disabled=${i === agenda.length - 1} onClick=${() => move(i, 1)}>${t("rcp.down")}<span class="visually-hidden"> ${x.number}</span></button>
                <button type="button" class="btn btn-sm" onClick=${() => setAgenda(agenda.filter((y) => y.id !== x.id))}>${t("common.remove")}<span class="visually-hidden"> ${x.number}</span></button></span></div>
            <div class="field"><label for=${`rcp-q-${x.id}`}>${t("rcp.question")}</label>
              <textarea id=${`rcp-q-${x.id}`} class="input" rows="2" maxlength="2000" value=${x.question} onInput=${(e) => setAgenda(agenda.map((y) => (y.id === x.id ? { ...y, question: e.target.value } : y)))}></textarea></div>
          </li>`)}</ol>
          <${DossierPicker} add=${(d) => setAgenda((a) => (a.some((x) => x.id === d.id) ? a : [...a, { ...d, question: "" }]))} exclude=${agenda.map((x) => x.id)} />
        </fieldset>
        <p class="small muted">${t("rcp.invite_hint")}</p>
        <div class="row"><button type="submit" class="btn btn-primary" disabled=${busy || agenda.length === 0}><${Icon} name="video" />${t("rcp.plan_submit")}</button></div>
      </div>
    </form>`;
}

function FicheForm({ item, present, onSaved }) {
  const [question, setQuestion] = useState(item.question);
  const [proposal, setProposal] = useState(item.proposal);
  const [names, setNames] = useState((item.present.length ? item.present : present).join("\n"));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    setQuestion(item.question);
    setProposal(item.proposal);
    setNames((item.present.length ? item.present : present).join("\n"));
    setError(null);
  }, [item.id]);
  const body = () => ({ question, proposal, present: names.split("\n").map((s) => s.trim()).filter(Boolean) });
  const save = async (sign) => {
    setBusy(true);
    setError(null);
    try {
      let out = await api.put(`/rcp-items/${item.id}/fiche`, body());
      if (sign) {
        out = await api.post(`/rcp-items/${item.id}/sign`, {});
        toast(t("rcp.signed_toast", { number: item.number }));
      } else toast(t("common.saved"));
      onSaved(out);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="stack rcp-fiche" aria-labelledby=${`fiche-${item.id}`} onSubmit=${(e) => { e.preventDefault(); save(false); }}>
    <h3 id=${`fiche-${item.id}`}>${t("rcp.fiche")}</h3>
    <${Alert}>${error && errorMessage(error)}<//>
    <div class="field"><label for="fiche-question">${t("rcp.question")}</label>
      <textarea id="fiche-question" class="input" rows="2" maxlength="2000" value=${question} onInput=${(e) => setQuestion(e.target.value)}></textarea></div>
    <div class="field"><label for="fiche-proposal">${t("rcp.proposal")}</label>
      <textarea id="fiche-proposal" class="input" rows="4" maxlength="8000" value=${proposal} onInput=${(e) => setProposal(e.target.value)}></textarea></div>
    <div class="field"><label for="fiche-present">${t("rcp.present")}</label>
      <textarea id="fiche-present" class="input" rows="3" aria-describedby="fiche-present-hint" value=${names} onInput=${(e) => setNames(e.target.value)}></textarea>
      <span id="fiche-present-hint" class="small muted">${t("rcp.present_hint")}</span></div>
    <div class="row wrap">
      <button type="submit" class="btn" disabled=${busy}>${t("common.save")}</button>
      <button type="button" class="btn btn-primary" disabled=${busy || !proposal.trim()} onClick=${() => save(true)}><${Icon} name="pen" />${t("rcp.sign")}</button>
    </div>
  </form>`;
}

/** The agenda with the dossier shown now; the lead's controls and fiche form. `current`
 * is the live item (rcp:current, or the room:join state); `present` the names in the room. */
export function RcpAgenda({ meetingId, current, present = [], compact = false }) {
  const [m, setM] = useState(null);
  const [error, setError] = useState(null);
  const load = () => api.get(`/rcp-meetings/${meetingId}`).then(setM).catch(setError);
  useEffect(() => {
    load();
  }, [meetingId, current && current.item_id]);
  useEffect(() => onLive("rcp:item_signed", (e) => e.meeting_id === meetingId && load()), [meetingId]);
  if (error) return html`<${Alert}>${errorMessage(error)}<//>`;
  if (!m) return html`<p class="muted small" role="status">${t("common.loading")}</p>`;
  const lead = m.my_role === "lead" && m.status === "planned";
  const curId = (current && current.item_id) || m.current_item_id;
  const cur = m.items.find((i) => i.id === curId);
  const go = async (item_id) => {
    setError(null);
    try {
      await api.post(`/rcp-meetings/${m.id}/current`, item_id ? { item_id } : {});
      load();
    } catch (err) {
      setError(err);
    }
  };
  const last = cur && cur.position === m.items.length;
  return html`<div class="stack rcp-agenda">
    <section class="rcp-current" aria-live="polite" aria-labelledby=${`rcp-cur-${m.id}`}>
      <h3 id=${`rcp-cur-${m.id}`}>${t("rcp.current")}</h3>
      ${cur ? html`<p class="rcp-current-dossier" data-item=${cur.id}><strong>${cur.patient || t("activity.number", { number: cur.number })}</strong>
          ${cur.patient && html`<br /><span class="small muted">${t("activity.number", { number: cur.number })}</span>`}
          <br /><span class="small">${t("rcp.question")} : ${cur.question || "–"}</span>
          ${cur.patient && html`<br /><${Link} href=${`/app/dossiers/${cur.dossier_id}`} target=${compact ? "_blank" : undefined}>${t("rcp.open_dossier")}<//>`}</p>`
        : html`<p class="small muted">${t("rcp.not_started")}</p>`}
      ${lead && html`<button type="button" class="btn btn-primary btn-sm" disabled=${last} onClick=${() => go(null)}>${cur ? t("rcp.next") : t("rcp.start")}</button>`}
    </section>
    <section aria-labelledby=${`rcp-agenda-${m.id}`}>
      <h3 id=${`rcp-agenda-${m.id}`}>${t("rcp.agenda")}</h3>
      <ol class="history-list rcp-items">${m.items.map((i) => html`<li key=${i.id} class=${i.id === curId ? "is-current" : ""} aria-current=${i.id === curId ? "step" : undefined}>
        <span><strong>${i.position}. ${i.patient || t("activity.number", { number: i.number })}</strong>
          <br /><span class="small muted">${i.question || "–"}</span>
          <br /><span class=${`badge badge-rcp-${i.status}`}>${i.status_label}</span>
          ${i.document_id && i.patient && html` <${Link} class="small" href=${`/app/dossiers/${i.dossier_id}`}>${t("rcp.see_fiche")}<//>`}</span>
        ${lead && i.id !== curId && html`<button type="button" class="btn btn-sm" onClick=${() => go(i.id)}>${t("rcp.present_item")}<span class="visually-hidden"> ${i.number}</span></button>`}
      </li>`)}</ol>
    </section>
    ${lead && cur && cur.status === "pending" && html`<${FicheForm} item=${cur} present=${present} onSaved=${() => load()} />`}
    ${cur && cur.status === "signed" && html`<div class="alert alert-success" role="status"><${Icon} name="check" /> ${t("rcp.signed_on", { date: formatDateTime(cur.signed_at), name: cur.signed_by ? cur.signed_by.name : "" })}</div>`}
  </div>`;
}

function RescheduleDialog({ m, onClose, onDone }) {
  const start = new Date(m.scheduled_at);
  const [date, setDate] = useState(localDate(start));
  const [time, setTime] = useState(`${pad(start.getHours())}:${pad(start.getMinutes())}`);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    try {
      await api.post(`/rcp-meetings/${m.id}/reschedule`, { scheduled_at: new Date(`${date}T${time}`).toISOString() });
      toast(t("rcp.rescheduled_toast"));
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return html`<${Dialog} open=${true} title=${t("rcp.reschedule")} onClose=${onClose}
    footer=${html`<button type="button" class="btn" onClick=${onClose}>${t("common.cancel")}</button>
      <button type="submit" form="rcp-move-form" class="btn btn-primary">${t("tlc.reschedule_submit")}</button>`}>
    <form id="rcp-move-form" class="stack" onSubmit=${submit}>
      <${Alert}>${error && errorMessage(error)}<//>
      <div class="row wrap">
        <div class="field"><label for="rcp-move-date">${t("tlc.date")}</label><input id="rcp-move-date" class="input" type="date" required value=${date} onInput=${(e) => setDate(e.target.value)} /></div>
        <div class="field"><label for="rcp-move-time">${t("tlc.time")}</label><input id="rcp-move-time" class="input" type="time" required value=${time} onInput=${(e) => setTime(e.target.value)} /></div>
      </div>
      <p class="small muted">${t("rcp.reschedule_hint")}</p>
    </form>
  <//>`;
}

/** The meeting's page: /app/rcp/:id. */
export function RcpMeetingPage({ id }) {
  const [m, setM] = useState(null);
  const [current, setCurrent] = useState(null);
  const [present, setPresent] = useState([]);
  const [moving, setMoving] = useState(false);
  const [error, setError] = useState(null);
  useTitle(m ? m.title : t("rcp.meeting"));
  const load = () => api.get(`/rcp-meetings/${id}`).then(setM).catch(setError);
  useEffect(() => {
    load();
    return onLive("rcp:current", (c) => c.meeting_id === id && setCurrent(c));
  }, [id]);
  useEffect(() => {
    if (!m) return;
    api.get("/rooms").then((all) => {
      const r = (Array.isArray(all) ? all : []).find((x) => x.id === m.room_id);
      if (r && r.occupancy) setPresent(r.occupancy.participants.map((p) => p.name));
    }).catch(() => {});
  }, [m && m.room_id]);
  if (error) return html`<${Alert}>${errorMessage(error)}<//>`;
  if (!m) return html`<p class="muted" role="status">${t("common.loading")}</p>`;
  const cancel = async () => {
    try {
      await api.post(`/rcp-meetings/${m.id}/cancel`, {});
      toast(t("rcp.cancelled_toast"));
      load();
    } catch (err) {
      setError(err);
    }
  };
  const lead = m.my_role === "lead" && m.status === "planned";
  return html`<div class="page-head"><div><h1>${m.title}</h1>
      <p>${t("rcp.when", { date: formatDateTime(m.scheduled_at), n: m.duration_minutes })} · <span class=${`badge badge-rcp-${m.status}`}>${m.status_label}</span></p></div>
      ${m.status === "planned" && html`<${Link} class="btn btn-primary" href=${`/app/rooms/${m.room_id}`}><${Icon} name="video" />${t("tlc.enter")}<//>`}</div>
    <div class="layout-2">
      <section class="card" aria-labelledby="rcp-agenda-card"><div class="card-header"><h2 id="rcp-agenda-card">${t("rcp.meeting")}</h2></div>
        <div class="card-body"><${RcpAgenda} meetingId=${m.id} current=${current} present=${present} /></div></section>
      <section class="card" aria-labelledby="rcp-people"><div class="card-header"><h2 id="rcp-people">${t("rcp.participants")}</h2></div>
        <div class="card-body stack">
          <dl class="dl"><dt>${t("rcp.lead")}</dt><dd>${m.lead ? m.lead.name : "–"}</dd>
            <dt>${t("rcp.invitees")}</dt><dd>${m.invitees.map((u) => u.name).join(", ") || "–"}</dd></dl>
          <p class="small muted">${t("rcp.rights_hint")}</p>
          ${lead && html`<div class="row wrap"><button type="button" class="btn btn-sm" onClick=${() => setMoving(true)}>${t("rcp.reschedule")}</button>
            <button type="button" class="btn btn-sm" onClick=${cancel}>${t("rcp.cancel")}</button></div>`}
        </div></section>
    </div>
    ${moving && html`<${RescheduleDialog} m=${m} onClose=${() => setMoving(false)} onDone=${() => { setMoving(false); load(); }} />`}`;
}

/** The activity view's card: my RCPs, « Planifier une RCP ». */
export function RcpList() {
  const [items, setItems] = useState(null);
  useEffect(() => {
    api.get("/rcp-meetings").then(setItems).catch(() => setItems([]));
  }, []);
  const upcoming = (items || []).filter((m) => m.status === "planned");
  return html`<section class="card" aria-labelledby="rcp-list-title">
    <div class="card-header row-between"><h2 id="rcp-list-title">${t("rcp.list")}</h2>
      <${Link} class="btn btn-sm" href="/app/rcp/new"><${Icon} name="plus" />${t("rcp.plan")}<//></div>
    ${items === null ? html`<p class="card-body muted small">${t("common.loading")}</p>`
      : upcoming.length === 0 ? html`<${Empty} icon="users">${t("rcp.none")}<//>`
      : html`<ul class="room-list">${upcoming.map((m) => html`<li class="room-item" key=${m.id}>
          <div class="room-name">${m.title}</div>
          <div class="small muted">${formatDateTime(m.scheduled_at)} · ${t("rcp.count", { n: m.items, signed: m.signed })}</div>
          <${Link} class="btn btn-sm" href=${`/app/rcp/${m.id}`}>${t("rcp.open")}<span class="visually-hidden"> ${m.title}</span><//>
        </li>`)}</ul>`}
  </section>`;
}
