// The dossier's téléconsultations and rooms (seed 001 § 2–3.1): « Salle prévue le … à … »,
// who is inside now (count and names), « Entrer dans la salle », and planning a
// téléconsultation with its participants and the patient's or a relative's invitation.
import { api } from "../api.js";
import { Alert, Dialog, errorMessage, toast } from "../components.js";
import { formatDateTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { patientName } from "../model.js";
import { Link } from "../router.js";
import { getSession } from "../session.js";

const OCCUPANCY_REFRESH_MS = 15000;
const PRESCRIPTION_TYPES = ["application/pdf", "image/png", "image/jpeg"];

function pad(n) {
  return String(n).padStart(2, "0");
}

function Occupancy({ room }) {
  if (!room.count) return html`<span class="small muted">${t("tlc.room_empty")}</span>`;
  return html`<span class="small"><${Icon} name="users" /> ${t(room.count === 1 ? "room.occupancy_one" : "room.occupancy_many", { count: room.count, names: room.occupants.map((o) => o.name).join(", ") })}</span>`;
}

function PlanDialog({ d, open, onClose, onPlanned }) {
  const tomorrow = new Date(Date.now() + 86400000);
  const [date, setDate] = useState(`${tomorrow.getFullYear()}-${pad(tomorrow.getMonth() + 1)}-${pad(tomorrow.getDate())}`);
  const [time, setTime] = useState("14:30");
  const [duration, setDuration] = useState(30);
  const [withExpert, setWithExpert] = useState(true);
  const [q, setQ] = useState("");
  const [found, setFound] = useState([]);
  const [nurse, setNurse] = useState(null);
  const [patient, setPatient] = useState({ name: patientName(d.patient), email: "", mobile: "" });
  const [relative, setRelative] = useState({ name: "", email: "", mobile: "" });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (q.trim().length < 2) return setFound([]);
    const timer = setTimeout(() => api.get(`/users/directory?q=${encodeURIComponent(q.trim())}&role=practitioner`).then(setFound).catch(() => setFound([])), 250);
    return () => clearTimeout(timer);
  }, [q]);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const practitioners = [d.requester.id];
    if (withExpert && d.expert) practitioners.push(d.expert.id);
    const guests = [];
    if (patient.email || patient.mobile) guests.push({ relation: "patient", name: patient.name, email: patient.email || null, mobile: patient.mobile || null });
    if (relative.name && (relative.email || relative.mobile)) guests.push({ relation: "relative", name: relative.name, email: relative.email || null, mobile: relative.mobile || null });
    try {
      const tc = await api.post(`/dossiers/${d.id}/teleconsultations`, {
        scheduled_at: new Date(`${date}T${time}`).toISOString(),
        duration_minutes: Number(duration),
        practitioner_ids: practitioners,
        nurse_id: nurse ? nurse.id : null,
        guests,
      });
      toast(t("tlc.planned_toast", { date: formatDateTime(tc.scheduled_at) }));
      onPlanned(tc);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const person = (who, value, set) => html`<fieldset class="stack">
    <legend>${t(`tlc.${who}`)}</legend>
    <div class="field"><label for=${`tlc-${who}-name`}>${t("tlc.guest_name")}</label><input id=${`tlc-${who}-name`} class="input" value=${value.name} maxlength="200" onInput=${(e) => set({ ...value, name: e.target.value })} /></div>
    <div class="field"><label for=${`tlc-${who}-email`}>${t("tlc.guest_email")}</label><input id=${`tlc-${who}-email`} class="input" type="email" value=${value.email} onInput=${(e) => set({ ...value, email: e.target.value })} /></div>
    <div class="field"><label for=${`tlc-${who}-mobile`}>${t("tlc.guest_mobile")}</label><input id=${`tlc-${who}-mobile`} class="input" type="tel" value=${value.mobile} onInput=${(e) => set({ ...value, mobile: e.target.value })} /></div>
  </fieldset>`;
  return html`<${Dialog} open=${open} title=${t("tlc.plan")} onClose=${onClose}
    footer=${html`<button type="button" class="btn" onClick=${onClose}>${t("common.cancel")}</button>
      <button type="submit" form="tlc-form" class="btn btn-primary" disabled=${busy}>${t("tlc.plan_submit")}</button>`}>
    <form id="tlc-form" class="stack" onSubmit=${submit}>
      <${Alert}>${error && errorMessage(error)}<//>
      <div class="row wrap">
        <div class="field"><label for="tlc-date">${t("tlc.date")}</label><input id="tlc-date" class="input" type="date" required value=${date} onInput=${(e) => setDate(e.target.value)} /></div>
        <div class="field"><label for="tlc-time">${t("tlc.time")}</label><input id="tlc-time" class="input" type="time" required value=${time} onInput=${(e) => setTime(e.target.value)} /></div>
        <div class="field"><label for="tlc-duration">${t("tlc.duration")}</label><select id="tlc-duration" class="input" value=${duration} onChange=${(e) => setDuration(e.target.value)}>
          ${[15, 20, 30, 45, 60].map((m) => html`<option value=${m}>${t("tlc.minutes", { n: m })}</option>`)}</select></div>
      </div>
      <p class="small">${t("tlc.practitioners")} : <strong>${d.requester.name}</strong></p>
      ${d.expert && html`<div class="field check"><input type="checkbox" id="tlc-expert" checked=${withExpert} onChange=${(e) => setWithExpert(e.target.checked)} /><label for="tlc-expert">${d.expert.name}</label></div>`}
      <div class="field"><label for="tlc-nurse-q">${t("tlc.nurse")}</label>
        ${nurse ? html`<div class="row"><strong>${nurse.display_name}</strong><button type="button" class="btn btn-sm" onClick=${() => setNurse(null)}>${t("tlc.change")}</button></div>`
          : html`<input id="tlc-nurse-q" class="input" value=${q} autocomplete="off" placeholder=${t("tlc.nurse_search")} onInput=${(e) => setQ(e.target.value)} />
            ${found.length > 0 && html`<ul class="history-list">${found.map((u) => html`<li key=${u.id}><button type="button" class="btn btn-sm" onClick=${() => { setNurse(u); setQ(""); }}>${u.display_name}</button></li>`)}</ul>`}`}
      </div>
      ${person("patient", patient, setPatient)}
      ${person("relative", relative, setRelative)}
      <p class="small muted">${t("tlc.invite_hint")}</p>
    </form>
  <//>`;
}

function RescheduleDialog({ tc, onClose, onDone }) {
  const start = new Date(tc.scheduled_at);
  const [date, setDate] = useState(`${start.getFullYear()}-${pad(start.getMonth() + 1)}-${pad(start.getDate())}`);
  const [time, setTime] = useState(`${pad(start.getHours())}:${pad(start.getMinutes())}`);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const moved = await api.post(`/teleconsultations/${tc.id}/reschedule`, { scheduled_at: new Date(`${date}T${time}`).toISOString() });
      toast(t("tlc.rescheduled_toast", { date: formatDateTime(moved.scheduled_at) }));
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Dialog} open=${true} title=${t("tlc.reschedule")} onClose=${onClose}
    footer=${html`<button type="button" class="btn" onClick=${onClose}>${t("common.cancel")}</button>
      <button type="submit" form="tlc-move-form" class="btn btn-primary" disabled=${busy}>${t("tlc.reschedule_submit")}</button>`}>
    <form id="tlc-move-form" class="stack" onSubmit=${submit}>
      <${Alert}>${error && errorMessage(error)}<//>
      <div class="row wrap">
        <div class="field"><label for="tlc-move-date">${t("tlc.date")}</label><input id="tlc-move-date" class="input" type="date" required value=${date} onInput=${(e) => setDate(e.target.value)} /></div>
        <div class="field"><label for="tlc-move-time">${t("tlc.time")}</label><input id="tlc-move-time" class="input" type="time" required value=${time} onInput=${(e) => setTime(e.target.value)} /></div>
      </div>
      <p class="small muted">${t("tlc.reschedule_hint")}</p>
    </form>
  <//>`;
}

// The consultation report (issue 16 item 4): « Motif », « Examen clinique / constatations »,
// « Conclusion », the prescriptions as a document of the dossier (chosen or added here), the
// médecin traitant's MSSanté address (from the dossier's last report or the directory).
function ReportDialog({ d, tc, gp, onClose, onDone }) {
  const [reason, setReason] = useState("");
  const [findings, setFindings] = useState("");
  const [conclusion, setConclusion] = useState("");
  const [docs, setDocs] = useState([]);
  const [prescription, setPrescription] = useState("");
  const [gpName, setGpName] = useState((gp && gp.gp_name) || "");
  const [gpMss, setGpMss] = useState((gp && gp.gp_mss) || "");
  const [q, setQ] = useState("");
  const [found, setFound] = useState([]);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const file = useRef(null);
  const loadDocs = () =>
    api.get(`/dossiers/${d.id}/documents`).then((r) => setDocs((r.categories || []).flatMap((c) => c.documents).filter((x) => PRESCRIPTION_TYPES.includes(x.content_type)))).catch(() => setDocs([]));
  useEffect(() => { loadDocs(); }, [d.id]);
  useEffect(() => {
    if (q.trim().length < 2) return setFound([]);
    const timer = setTimeout(() => api.get(`/mss-directory?q=${encodeURIComponent(q.trim())}&limit=8`).then(setFound).catch(() => setFound([])), 250);
    return () => clearTimeout(timer);
  }, [q]);
  const addFile = async (e) => {
    const f = e.target.files[0];
    e.target.value = "";
    if (!f) return;
    setError(null);
    try {
      const form = new FormData();
      form.append("file", f, f.name);
      const doc = await api.upload(`/dossiers/${d.id}/documents`, form);
      await loadDocs();
      setPrescription(doc.id);
    } catch (err) {
      setError(err);
    }
  };
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const signed = await api.post(`/teleconsultations/${tc.id}/report`, {
        reason, findings, conclusion,
        prescription_document_id: prescription || null,
        gp_name: gpName, gp_mss: gpMss || null,
      });
      toast(t("tlc.report_signed_toast"));
      onDone(signed);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const area = (id, label, value, set) => html`<div class="field"><label for=${id}>${label}</label><textarea id=${id} class="input" rows="3" required maxlength="8000" value=${value} onInput=${(e) => set(e.target.value)}></textarea></div>`;
  return html`<${Dialog} open=${true} title=${t("tlc.report_title")} onClose=${onClose}
    footer=${html`<button type="button" class="btn" onClick=${onClose}>${t("common.cancel")}</button>
      <button type="submit" form="tlc-report-form" class="btn btn-primary" disabled=${busy}><${Icon} name="pen" />${t("tlc.report_sign")}</button>`}>
    <form id="tlc-report-form" class="stack" onSubmit=${submit}>
      <${Alert}>${error && errorMessage(error)}<//>
      <p class="small muted">${t("tlc.report_of", { date: formatDateTime(tc.scheduled_at) })}</p>
      ${area("tlc-rep-reason", t("tlc.report_reason"), reason, setReason)}
      ${area("tlc-rep-findings", t("tlc.report_findings"), findings, setFindings)}
      ${area("tlc-rep-conclusion", t("tlc.report_conclusion"), conclusion, setConclusion)}
      <div class="field"><label for="tlc-rep-rx">${t("tlc.report_prescription")}</label>
        <select id="tlc-rep-rx" class="input" value=${prescription} onChange=${(e) => setPrescription(e.target.value)}>
          <option value="">${t("tlc.report_no_prescription")}</option>
          ${docs.map((x) => html`<option value=${x.id}>${x.filename}</option>`)}
        </select>
        <div><button type="button" class="btn btn-sm" onClick=${() => file.current.click()}><${Icon} name="plus" />${t("tlc.report_add_prescription")}</button>
          <input ref=${file} type="file" accept="application/pdf,image/png,image/jpeg" class="visually-hidden" tabindex="-1" aria-label=${t("tlc.report_add_prescription")} onChange=${addFile} /></div>
      </div>
      <fieldset class="stack"><legend>${t("tlc.report_gp")}</legend>
        <div class="field"><label for="tlc-rep-gp-name">${t("tlc.guest_name")}</label><input id="tlc-rep-gp-name" class="input" maxlength="200" value=${gpName} onInput=${(e) => setGpName(e.target.value)} /></div>
        <div class="field"><label for="tlc-rep-gp-mss">${t("tlc.report_gp_mss")}</label><input id="tlc-rep-gp-mss" class="input" type="email" value=${gpMss} onInput=${(e) => setGpMss(e.target.value)} /></div>
        <div class="field"><label for="tlc-rep-gp-q">${t("tlc.report_gp_search")}</label><input id="tlc-rep-gp-q" class="input" autocomplete="off" value=${q} onInput=${(e) => setQ(e.target.value)} />
          ${found.length > 0 && html`<ul class="history-list">${found.map((x) => html`<li key=${x.address}><span class="small">${x.last_name} ${x.first_name} · ${x.commune}</span><button type="button" class="btn btn-sm" onClick=${() => { setGpName(`Dr ${x.first_name} ${x.last_name}`.trim()); setGpMss(x.address); setQ(""); }}>${t("tlc.report_gp_pick")}</button></li>`)}</ul>`}</div>
      </fieldset>
      <p class="small muted">${t("tlc.report_hint")}</p>
    </form>
  <//>`;
}

function SendReportDialog({ tc, onClose, onDone }) {
  const patient = tc.guests.find((g) => g.relation === "patient") || tc.guests[0] || {};
  const [toPatient, setToPatient] = useState(true);
  const [toGp, setToGp] = useState(true);
  const [email, setEmail] = useState(patient.email || "");
  const [phone, setPhone] = useState(patient.mobile || "");
  const [gpMss, setGpMss] = useState((tc.report && tc.report.gp_mss) || "");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.post(`/teleconsultations/${tc.id}/report/send`, {
        to_patient: toPatient, to_gp: toGp,
        patient_email: email || null, patient_phone: phone || null, gp_mss: gpMss || null,
      });
      toast(t("tlc.report_sent_toast"));
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Dialog} open=${true} title=${t("tlc.report_send")} onClose=${onClose}
    footer=${html`<button type="button" class="btn" onClick=${onClose}>${t("common.cancel")}</button>
      <button type="submit" form="tlc-send-form" class="btn btn-primary" disabled=${busy}><${Icon} name="send" />${t("tlc.report_send_submit")}</button>`}>
    <form id="tlc-send-form" class="stack" onSubmit=${submit}>
      <${Alert}>${error && errorMessage(error)}<//>
      <fieldset class="stack"><legend>${t("tlc.report_send_patient")}</legend>
        <div class="field check"><input type="checkbox" id="tlc-send-p" checked=${toPatient} onChange=${(e) => setToPatient(e.target.checked)} /><label for="tlc-send-p">${t("tlc.report_send_patient_check")}</label></div>
        <div class="field"><label for="tlc-send-email">${t("tlc.guest_email")}</label><input id="tlc-send-email" class="input" type="email" value=${email} onInput=${(e) => setEmail(e.target.value)} /></div>
        <div class="field"><label for="tlc-send-phone">${t("tlc.guest_mobile")}</label><input id="tlc-send-phone" class="input" type="tel" value=${phone} onInput=${(e) => setPhone(e.target.value)} /></div>
      </fieldset>
      <fieldset class="stack"><legend>${t("tlc.report_gp")}</legend>
        <div class="field check"><input type="checkbox" id="tlc-send-gp" checked=${toGp} onChange=${(e) => setToGp(e.target.checked)} /><label for="tlc-send-gp">${t("tlc.report_send_gp_check")}</label></div>
        <div class="field"><label for="tlc-send-mss">${t("tlc.report_gp_mss")}</label><input id="tlc-send-mss" class="input" type="email" value=${gpMss} onInput=${(e) => setGpMss(e.target.value)} /></div>
      </fieldset>
    </form>
  <//>`;
}

export function TeleconsultPanel({ d, onChange }) {
  const [rooms, setRooms] = useState(null);
  const [tcs, setTcs] = useState([]);
  const [open, setOpen] = useState(false);
  const [moving, setMoving] = useState(null);
  const [writing, setWriting] = useState(null);
  const [sendingReport, setSendingReport] = useState(null);
  const me = getSession();
  const mayReport = (x) => me && (x.practitioners.length ? x.practitioners.some((u) => u.id === me.id) : x.planned_by && x.planned_by.id === me.id);
  const begun = (x) => x.step === "done" || (x.step === "planned" && new Date(x.scheduled_at) <= new Date());
  const lastGp = [...tcs].reverse().find((x) => x.report && x.report.gp_mss);
  const [error, setError] = useState(null);
  const mayPlan = d.my_side === "requester" || d.my_side === "expert";
  const load = () => {
    api.get(`/dossiers/${d.id}/rooms`).then(setRooms).catch(setError);
    if (mayPlan) api.get(`/dossiers/${d.id}/teleconsultations`).then(setTcs).catch(setError);
  };
  useEffect(() => {
    load();
    // Refreshes read the occupancy from the rooms list (GET /rooms), as the activity view
    // does, so that an open page does not add a dossier audit row every 15 s.
    const refresh = () =>
      api
        .get("/rooms")
        .then((all) => {
          const live = new Map((Array.isArray(all) ? all : []).map((r) => [r.id, r.occupancy]));
          setRooms((cur) => cur && cur.filter((r) => live.has(r.id)).map((r) => {
            const occ = live.get(r.id);
            return { ...r, count: occ.count, occupants: occ.participants.map((x) => ({ name: x.name, kind: x.role === "guest" ? "guest" : "user" })) };
          }));
        })
        .catch(() => {});
    const timer = setInterval(refresh, OCCUPANCY_REFRESH_MS);
    return () => clearInterval(timer);
  }, [d.id]);
  if (d.my_side === "reader") return null;
  const act = async (tc, what) => {
    setError(null);
    try {
      await api.post(`/teleconsultations/${tc.id}/${what}`, {});
      toast(t(`tlc.${what}_toast`));
      load();
    } catch (err) {
      setError(err);
    }
  };
  const planned = tcs.filter((x) => x.step !== "cancelled");
  return html`<section class="card" aria-labelledby="tlc-title">
    <div class="card-header row-between"><h2 id="tlc-title">${t("tlc.title")}</h2>
      ${mayPlan && html`<button type="button" class="btn btn-sm btn-primary" onClick=${() => setOpen(true)}><${Icon} name="video" />${t("tlc.plan")}</button>`}</div>
    <div class="card-body stack">
      <${Alert}>${error && errorMessage(error)}<//>
      ${rooms === null ? html`<p class="muted small" role="status">${t("common.loading")}</p>`
        : rooms.length === 0 ? html`<p class="small muted">${t("tlc.no_room")}</p>`
        : html`<ul class="history-list tlc-rooms">${rooms.map((r) => html`<li key=${r.id}>
            <span><strong>${r.label}</strong><br /><${Occupancy} room=${r} /></span>
            <${Link} href=${`/app/rooms/${r.id}`} class="btn btn-sm btn-primary"><${Icon} name="video" />${t("tlc.enter")}<//>
          </li>`)}</ul>`}
      ${planned.length > 0 && html`<ul class="history-list">${planned.map((x) => html`<li key=${x.id}>
          <span><span class=${`badge badge-tlc-${x.step}`}>${x.step_label}</span> ${formatDateTime(x.scheduled_at)} · ${t("tlc.minutes", { n: x.duration_minutes })}
            <br /><span class="small muted">${[...x.practitioners.map((p) => p.name), x.nurse && x.nurse.name, ...x.guests.map((g) => g.name)].filter(Boolean).join(", ")}</span></span>
          ${x.step === "planned" && html`<span class="row">
            <button type="button" class="btn btn-sm" onClick=${() => setMoving(x)}>${t("tlc.reschedule")}</button>
            <button type="button" class="btn btn-sm" onClick=${() => act(x, "done")}>${t("tlc.mark_done")}</button>
            <button type="button" class="btn btn-sm" onClick=${() => act(x, "cancel")}>${t("tlc.cancel")}</button></span>`}
          ${!x.report && begun(x) && mayReport(x) && html`<button type="button" class="btn btn-sm btn-primary tlc-report-write" onClick=${() => setWriting(x)}><${Icon} name="pen" />${t("tlc.report_write")}</button>`}
          ${x.report && html`<div class="tlc-report small">
            <div><${Icon} name="check" /> ${t("tlc.report_signed_by", { name: x.report.signed_by ? x.report.signed_by.name : "", date: formatDateTime(x.report.signed_at) })}</div>
            ${x.report.sent.map((s) => html`<div key=${s.channel + s.to + s.at} class="muted">${t(`tlc.report_sent_${s.channel}`, { to: s.to, date: formatDateTime(s.at) })}</div>`)}
            ${mayReport(x) && html`<button type="button" class="btn btn-sm" onClick=${() => setSendingReport(x)}><${Icon} name="send" />${t("tlc.report_send")}</button>`}</div>`}
        </li>`)}</ul>`}
    </div>
    ${writing && html`<${ReportDialog} d=${d} tc=${writing} gp=${lastGp && lastGp.report} onClose=${() => setWriting(null)} onDone=${(signed) => { setWriting(null); load(); setSendingReport(signed); if (onChange) onChange(); }} />`}
    ${sendingReport && html`<${SendReportDialog} tc=${sendingReport} onClose=${() => setSendingReport(null)} onDone=${() => { setSendingReport(null); load(); }} />`}
    ${moving && html`<${RescheduleDialog} tc=${moving} onClose=${() => setMoving(null)} onDone=${() => { setMoving(null); load(); }} />`}
    ${mayPlan && html`<${PlanDialog} d=${d} open=${open} onClose=${() => setOpen(false)} onPlanned=${() => { setOpen(false); load(); }} />`}
  </section>`;
}
