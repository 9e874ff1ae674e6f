// The dossier wizard, exactly as seed 000 § 2.2: RECHERCHE D'IDENTITÉ → VALIDATION (or
// CRÉATION, with the look-alike warning and « Confirmer ») → CONSENTEMENT → DESTINATAIRES →
// TYPE DE DEMANDE → VALIDATION.
import { api } from "../api.js";
import { Alert, Empty, errorMessage, useTitle } from "../components.js";
import { formatBirthDate, t } from "../i18n.js";
import { EvidenceFields, STATUSES, StatusPanel } from "../identity.js";
import { Icon } from "../icons.js";
import { html, useEffect, useState } from "../lib.js";
import { patientName, sexSymbol } from "../model.js";
import { rememberSearch } from "../recent.js";
import { navigate } from "../router.js";

const STEPS = ["search", "identity", "consent", "recipients", "type", "validation"];

function Steps({ step, creating }) {
  const i = STEPS.indexOf(step);
  return html`<ol class="wizard-steps">${STEPS.map((s, k) => html`<li key=${s} class=${k < i ? "done" : k === i ? "current" : ""} aria-current=${k === i ? "step" : undefined}>
    ${s === "identity" && creating ? t("wizard.step_create") : t(`wizard.step_${s}`)}</li>`)}</ol>`;
}

function PatientTable({ rows, onPick, withRate = true, pickLabel }) {
  return html`<div class="table-wrap"><table class="table responsive patient-table">
    <thead><tr>
      <th scope="col">IPP</th><th scope="col">${t("wizard.col_birth_name")}</th><th scope="col">${t("wizard.col_first_name")}</th>
      <th scope="col">${t("wizard.col_birth_date")}</th><th scope="col">${t("activity.col_sex")}</th>
      ${withRate && html`<th scope="col">${t("wizard.col_match")}</th>`}<th scope="col">${t("wizard.col_ins_status")}</th><th scope="col" class="actions"></th>
    </tr></thead>
    <tbody>${rows.map((p) => html`<tr key=${p.id} class="clickable" onClick=${() => onPick(p)}>
      <td data-label="IPP" class="mono">${p.ipp || "–"}</td>
      <td data-label=${t("wizard.col_birth_name")}><strong>${p.birth_name}</strong>${p.used_name && p.used_name !== p.birth_name ? ` (${p.used_name})` : ""}</td>
      <td data-label=${t("wizard.col_first_name")}>${p.first_name}</td>
      <td data-label=${t("wizard.col_birth_date")}>${formatBirthDate(p.birth_date)}</td>
      <td data-label=${t("activity.col_sex")}><span class="sex" aria-label=${sexSymbol(p.sex).label}>${sexSymbol(p.sex).symbol}</span></td>
      ${withRate && html`<td data-label=${t("wizard.col_match")} class="match">${Number(p.match_rate).toFixed(2).replace(".", ",")} %</td>`}
      <td data-label=${t("wizard.col_ins_status")}>${p.ins_status_label || p.ins_status}</td>
      <td class="actions"><button type="button" class="btn btn-sm" onClick=${(e) => { e.stopPropagation(); onPick(p); }}>${pickLabel || t("wizard.select")}</button></td>
    </tr>`)}</tbody></table></div>`;
}

function SearchStep({ onPick, onCreate }) {
  const [q, setQ] = useState("");
  const [birth, setBirth] = useState("");
  const [sex, setSex] = useState("");
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  const search = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      setRows(await api.get("/patients", { query: { q: q.trim().length >= 2 ? q.trim() : undefined, birth_date: birth || undefined, sex: sex || undefined } }));
      if (q.trim().length >= 2) rememberSearch({ q: q.trim() });
    } catch (err) {
      setError(err);
    }
  };
  return html`<div class="card-body">
    <h2>${t("wizard.search_title")}</h2>
    <form class="form-grid" onSubmit=${search} role="search">
      <div class="field"><label for="pq">${t("wizard.search_name")}</label><input id="pq" class="input" value=${q} onInput=${(e) => setQ(e.target.value)} autocomplete="off" /></div>
      <div class="field"><label for="pb">${t("wizard.col_birth_date")}</label><input id="pb" class="input" type="date" value=${birth} onInput=${(e) => setBirth(e.target.value)} /></div>
      <div class="field"><label for="ps">${t("activity.col_sex")}</label><select id="ps" class="input" value=${sex} onChange=${(e) => setSex(e.target.value)}>
        <option value="">–</option><option value="F">${t("sex.F")}</option><option value="M">${t("sex.M")}</option></select></div>
      <div class="field field-action"><button type="submit" class="btn btn-primary"><${Icon} name="search" />${t("common.search")}</button></div>
    </form>
    <${Alert}>${error && errorMessage(error)}<//>
    ${rows && (rows.length ? html`<p class="small muted">${t("wizard.results", { count: rows.length })}</p><${PatientTable} rows=${rows} onPick=${onPick} />` : html`<${Empty} icon="users">${t("wizard.no_patient")}<//>`)}
    <div class="row"><button type="button" class="btn" onClick=${onCreate}><${Icon} name="plus" />${t("wizard.create_identity")}</button></div>
  </div>`;
}

function IdentityView({ p, onChanged }) {
  const mobile = (p.contacts || []).find((c) => c.kind === "mobile");
  const mail = (p.contacts || []).find((c) => c.kind === "email");
  const addr = (p.addresses || [])[0];
  return html`<div class="split">
    <dl class="dl">
      <dt>${t("wizard.birth_name")}</dt><dd>${p.birth_name}</dd>
      <dt>${t("wizard.used_name")}</dt><dd>${p.used_name || "–"}</dd>
      <dt>${t("wizard.first_name")}</dt><dd>${p.first_name}</dd>
      <dt>${t("wizard.first_names")}</dt><dd>${(p.first_names_list || []).join(", ") || p.first_names || "–"}</dd>
      <dt>${t("activity.col_sex")}</dt><dd>${sexSymbol(p.sex).label}</dd>
      <dt>${t("identity.ins")}</dt><dd class="mono">${p.ins || "–"} <span class="muted small">${p.ins_oid_label ? `${p.ins_oid_label} (${p.ins_oid})` : ""}</span></dd>
      <dt>${t("identity.status")}</dt><dd>${p.ins_status_label || ""}${p.identity_document_label ? ` — ${p.identity_document_label}` : ""}</dd>
      <dt>${t("wizard.col_birth_date")}</dt><dd>${formatBirthDate(p.birth_date)}</dd>
    </dl>
    <dl class="dl">
      <dt>${t("wizard.birth_place")}</dt><dd>${[p.birth_commune, p.birth_postcode, p.birth_country].filter(Boolean).join(", ") || "–"}${p.birth_insee_code ? html` <span class="mono small">(${t("identity.insee")} ${p.birth_insee_code})</span>` : ""}</dd>
      <dt>${t("wizard.address")}</dt><dd>${addr ? [addr.street, addr.postcode, addr.city].filter(Boolean).join(", ") : "–"}</dd>
      <dt>${t("settings.mobile")}</dt><dd>${mobile ? mobile.value : "–"}</dd>
      <dt>${t("login.email")}</dt><dd>${mail ? mail.value : "–"}</dd>
    </dl>
  </div>
  ${onChanged && html`<${StatusPanel} p=${p} onChanged=${onChanged} />`}`;
}

function CreateStep({ onCreated, onBack }) {
  const [f, setF] = useState({
    birth_name: "", used_name: "", first_name: "", first_names: "", sex: "", birth_date: "", birth_commune: "", birth_postcode: "", birth_insee_code: "",
    ins: "", ins_oid: "1.2.250.1.213.1.4.8", ins_status: "provisional", status_reason: "", mobile: "", email: "", city: "", postcode: "", street: "",
  });
  const [insi, setInsi] = useState(false);
  const [doc, setDoc] = useState("");
  const [places, setPlaces] = useState([]);
  const [placeError, setPlaceError] = useState(null);
  const [similar, setSimilar] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  // The birth place's INSEE code comes from the commune table: a postcode lists its communes.
  const birthPostcode = async (e) => {
    const postcode = e.target.value.trim();
    setF({ ...f, birth_postcode: postcode, birth_insee_code: "", birth_commune: "" });
    setPlaces([]);
    setPlaceError(null);
    if (!/^\d{5}$/.test(postcode)) return;
    try {
      const found = await api.get("/communes", { query: { postcode } });
      setPlaces(found);
      if (found.length === 1) setF((cur) => ({ ...cur, birth_insee_code: found[0].insee, birth_commune: found[0].name }));
    } catch (err) {
      setPlaceError(err);
    }
  };
  const pickPlace = (e) => {
    const c = places.find((x) => x.insee === e.target.value);
    setF({ ...f, birth_insee_code: c ? c.insee : "", birth_commune: c ? c.name : "" });
  };
  const body = (confirm) => ({
    birth_name: f.birth_name.trim(), used_name: f.used_name.trim(), first_name: f.first_name.trim(), sex: f.sex, birth_date: f.birth_date,
    first_names: f.first_names.trim(),
    birth_commune: f.birth_commune.trim(), birth_postcode: f.birth_postcode.trim(), birth_insee_code: f.birth_insee_code,
    ...(f.ins.trim() ? { ins: f.ins.trim(), ins_oid: f.ins_oid } : {}),
    ins_status: f.ins_status, insi, ...(doc ? { identity_document: doc } : {}), status_reason: f.status_reason.trim(),
    contacts: [...(f.mobile.trim() ? [{ kind: "mobile", value: f.mobile.trim() }] : []), ...(f.email.trim() ? [{ kind: "email", value: f.email.trim() }] : [])],
    addresses: f.city.trim() || f.street.trim() ? [{ city: f.city.trim(), postcode: f.postcode.trim(), street: f.street.trim() }] : [],
    confirm,
  });
  const submit = async (confirm) => {
    setBusy(true);
    setError(null);
    try {
      onCreated(await api.post("/patients", body(confirm)));
    } catch (err) {
      if (err.code === "similar_identities") setSimilar(err.body.candidates || []);
      else setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (similar) {
    return html`<div class="card-body">
      <${Alert} kind="warning" title=${t("wizard.similar_title")}>${t("wizard.similar_body")}<//>
      <${PatientTable} rows=${similar} onPick=${onCreated} pickLabel=${t("wizard.use_this")} />
      <div class="wizard-foot"><button type="button" class="btn" onClick=${() => setSimilar(null)}>${t("wizard.back")}</button>
        <button type="button" class="btn btn-primary" disabled=${busy} onClick=${() => submit(true)}>${t("common.confirm")}</button></div>
    </div>`;
  }
  const field = (k, label, attrs = {}) => html`<div class="field"><label for=${`pc-${k}`}>${label}</label><input id=${`pc-${k}`} class="input" value=${f[k]} onInput=${set(k)} ...${attrs} /></div>`;
  return html`<form class="card-body" onSubmit=${(e) => { e.preventDefault(); submit(false); }}>
    <h2>${t("wizard.create_title")}</h2>
    <${Alert}>${error && errorMessage(error)}<//>
    <div class="form-grid">
      ${field("birth_name", t("wizard.birth_name") + " *", { required: true, autocomplete: "off" })}
      ${field("used_name", t("wizard.used_name"))}
      ${field("first_name", t("wizard.first_name") + " *", { required: true, autocomplete: "off" })}
      ${field("first_names", t("identity.first_names_birth"), { autocomplete: "off", "aria-describedby": "pc-first_names-help" })}
      <p id="pc-first_names-help" class="small muted">${t("identity.first_names_help")}</p>
      <div class="field"><label for="pc-sex">${t("activity.col_sex")} *</label><select id="pc-sex" class="input" value=${f.sex} onChange=${set("sex")} required>
        <option value="">–</option><option value="F">${t("sex.F")}</option><option value="M">${t("sex.M")}</option><option value="I">${t("sex.U")}</option></select></div>
      ${field("birth_date", t("wizard.col_birth_date") + " *", { type: "date", required: true })}
      <div class="field"><label for="pc-birth_postcode">${t("identity.birth_postcode")}</label>
        <input id="pc-birth_postcode" class="input" inputmode="numeric" maxlength="5" value=${f.birth_postcode} onInput=${birthPostcode} /></div>
      ${places.length > 1 && html`<div class="field"><label for="pc-birth_place">${t("wizard.birth_commune")}</label>
        <select id="pc-birth_place" class="input" value=${f.birth_insee_code} onChange=${pickPlace}>
          <option value="">–</option>${places.map((c) => html`<option value=${c.insee}>${c.name} (${c.insee})</option>`)}</select></div>`}
      ${places.length <= 1 && field("birth_commune", t("wizard.birth_commune"))}
      <div class="field"><label for="pc-birth_insee_code">${t("identity.birth_insee_code")}</label>
        <input id="pc-birth_insee_code" class="input mono" maxlength="5" value=${f.birth_insee_code} onInput=${set("birth_insee_code")} aria-describedby="pc-insee-help" /></div>
      <p id="pc-insee-help" class="small muted">${placeError ? errorMessage(placeError) : t("identity.birth_insee_help")}</p>
      ${field("ins", t("identity.ins_matricule"), { class: "input mono", inputmode: "numeric", maxlength: 21, autocomplete: "off" })}
      <div class="field"><label for="pc-ins_oid">${t("identity.ins_oid")}</label>
        <select id="pc-ins_oid" class="input" value=${f.ins_oid} onChange=${set("ins_oid")}>
          <option value="1.2.250.1.213.1.4.8">NIR (1.2.250.1.213.1.4.8)</option>
          <option value="1.2.250.1.213.1.4.9">NIA (1.2.250.1.213.1.4.9)</option>
          <option value="1.2.250.1.213.1.4.10">${t("identity.oid_test")} (1.2.250.1.213.1.4.10)</option>
          <option value="1.2.250.1.213.1.4.11">${t("identity.oid_demo")} (1.2.250.1.213.1.4.11)</option></select></div>
      <div class="field"><label for="pc-ins_status">${t("identity.status")}</label>
        <select id="pc-ins_status" class="input" value=${f.ins_status} onChange=${set("ins_status")}>
          ${STATUSES.map((st) => html`<option value=${st}>${t(`identity.status_${st}`)}</option>`)}</select></div>
      <${EvidenceFields} prefix="pc" status=${f.ins_status} insi=${insi} setInsi=${setInsi} doc=${doc} setDoc=${setDoc} />
      ${f.ins_status !== "provisional" && field("status_reason", t("identity.reason"))}
      ${field("mobile", t("settings.mobile"), { type: "tel" })}
      ${field("email", t("login.email"), { type: "email" })}
      ${field("street", t("wizard.street"))}
      ${field("postcode", t("wizard.postcode"))}
      ${field("city", t("wizard.city"))}
    </div>
    <div class="wizard-foot"><button type="button" class="btn" onClick=${onBack}>${t("wizard.back")}</button>
      <button type="submit" class="btn btn-primary" disabled=${busy}>${t("common.validate")}</button></div>
  </form>`;
}

function ConsentStep({ dossier, onDone, onBack }) {
  const [consent, setConsent] = useState(!!dossier.consent);
  const [comment, setComment] = useState(dossier.consent_comment || "");
  const [urgent, setUrgent] = useState(!!dossier.urgent);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      onDone(await api.put(`/dossiers/${dossier.id}/consent`, { consent, comment: comment.trim(), urgent }));
    } catch (err) {
      setError(err);
    }
  };
  const p = dossier.patient;
  return html`<form class="card-body" onSubmit=${submit}>
    <h2>${patientName(p)} ${t("patient.born", { date: formatBirthDate(p.birth_date) })}</h2>
    <${Alert}>${error && errorMessage(error)}<//>
    <fieldset><legend>${t("wizard.consent_required")} *</legend>
      <label class="check"><input type="checkbox" checked=${consent} onChange=${(e) => setConsent(e.target.checked)} required />
        <span>${t("wizard.consent_question")}</span></label></fieldset>
    <p><a href="/static/docs/note-information-consentement.html" target="_blank" rel="noopener"><${Icon} name="download" /> ${t("wizard.consent_note")}</a></p>
    <div class="field"><label for="consent-comment">${t("wizard.comment")} *</label>
      <textarea id="consent-comment" class="input" value=${comment} onInput=${(e) => setComment(e.target.value)} required maxlength="2000"></textarea></div>
    <fieldset><legend>${t("wizard.urgency")}</legend>
      <label class="check"><input type="checkbox" checked=${urgent} onChange=${(e) => setUrgent(e.target.checked)} /><span>${t("wizard.is_urgent")}</span></label></fieldset>
    <div class="wizard-foot"><button type="button" class="btn" onClick=${onBack}>${t("common.previous")}</button>
      <button type="submit" class="btn btn-primary" disabled=${!consent || !comment.trim()}>${t("common.next")}</button></div>
  </form>`;
}

function RecipientsStep({ dossier, onDone, onBack }) {
  const [q, setQ] = useState("");
  const [near, setNear] = useState("");
  const [radius, setRadius] = useState("50");
  const [establishment, setEstablishment] = useState("");
  const [specialty, setSpecialty] = useState("");
  const [facets, setFacets] = useState({ specialties: [], establishments: [] });
  const [results, setResults] = useState(null);
  const [selected, setSelected] = useState(dossier.recipients || []);
  const [error, setError] = useState(null);
  useEffect(() => {
    api.get("/care-offers/facets").then(setFacets).catch(() => {});
  }, []);
  const search = async (e) => {
    e && e.preventDefault();
    setError(null);
    try {
      const r = await api.get("/care-offers", { query: { q: q.trim().length >= 3 ? q.trim() : undefined, near: near.trim() || undefined, radius_km: near.trim() ? radius : undefined, establishment: establishment || undefined, specialty: specialty || undefined } });
      setResults(r.items || []);
    } catch (err) {
      setError(err);
    }
  };
  const add = (o) => setSelected((xs) => (xs.some((x) => x.id === o.id) ? xs : [...xs, o]));
  const remove = (o) => setSelected((xs) => xs.filter((x) => x.id !== o.id));
  const next = async () => {
    setError(null);
    try {
      onDone(await api.put(`/dossiers/${dossier.id}/recipients`, { care_offer_ids: selected.map((o) => o.id) }));
    } catch (err) {
      setError(err);
    }
  };
  return html`<div class="card-body">
    <h2>${t("wizard.offer_title")}</h2>
    <form class="form-grid" onSubmit=${search} role="search">
      <div class="field"><label for="co-q">${t("wizard.offer_keyword")}</label><input id="co-q" class="input" value=${q} onInput=${(e) => setQ(e.target.value)} placeholder=${t("wizard.offer_keyword_hint")} /></div>
      <div class="row"><div class="field grow"><label for="co-near">${t("wizard.offer_address")}</label><input id="co-near" class="input" value=${near} onInput=${(e) => setNear(e.target.value)} /></div>
        <div class="field"><label for="co-radius">${t("wizard.offer_radius")}</label><select id="co-radius" class="input" value=${radius} onChange=${(e) => setRadius(e.target.value)}>
          ${["10", "25", "50", "100", "200"].map((r) => html`<option value=${r}>${r} km</option>`)}</select></div></div>
      <div class="field"><label for="co-est">${t("wizard.offer_establishment")}</label><select id="co-est" class="input" value=${establishment} onChange=${(e) => setEstablishment(e.target.value)}>
        <option value="">–</option>${facets.establishments.map((x) => html`<option value=${x}>${x}</option>`)}</select></div>
      <div class="field"><label for="co-spec">${t("wizard.offer_specialty")}</label><select id="co-spec" class="input" value=${specialty} onChange=${(e) => setSpecialty(e.target.value)}>
        <option value="">–</option>${facets.specialties.map((x) => html`<option value=${x}>${x}</option>`)}</select></div>
      <div><button type="submit" class="btn btn-primary"><${Icon} name="search" />${t("common.search")}</button></div>
    </form>
    <${Alert}>${error && errorMessage(error)}<//>
    <div class="split">
      <section aria-labelledby="co-results"><h3 id="co-results">${t("wizard.offer_results")}</h3>
        ${results === null ? html`<p class="small muted">${t("wizard.offer_hint")}</p>` : !results.length ? html`<${Empty}>${t("wizard.offer_none")}<//>` : html`<ul class="selected-list">
          ${results.map((o) => html`<li key=${o.id}><button type="button" class="choice" onClick=${() => add(o)} aria-pressed=${selected.some((x) => x.id === o.id) ? "true" : "false"}>
            <span><span class="choice-title">${o.name}</span><br /><span class="choice-sub">${o.specialty} · ${o.establishment}${o.distance_km != null ? ` · ${Math.round(o.distance_km)} km` : ""}</span>
            ${o.members && o.members.length ? html`<br /><span class="choice-sub">${o.members.map((m) => m.name).join(", ")}</span>` : ""}</span></button></li>`)}
        </ul>`}
      </section>
      <section aria-labelledby="co-selected"><h3 id="co-selected">${t("wizard.offer_selected", { count: selected.length })}</h3>
        ${!selected.length ? html`<p class="small muted">${t("wizard.offer_selected_none")}</p>` : html`<ul class="selected-list">
          ${selected.map((o) => html`<li key=${o.id}><button type="button" class="choice selected" onClick=${() => remove(o)} aria-label=${t("wizard.offer_remove", { name: o.name })}>
            <${Icon} name="x" /><span><span class="choice-title">${o.name}</span><br /><span class="choice-sub">${o.specialty}</span></span></button></li>`)}</ul>`}
      </section>
    </div>
    <div class="wizard-foot"><button type="button" class="btn" onClick=${onBack}>${t("common.previous")}</button>
      <button type="button" class="btn btn-primary" disabled=${!selected.length} onClick=${next}>${t("common.next")}</button></div>
  </div>`;
}

function TypeStep({ dossier, onDone, onBack }) {
  const [types, setTypes] = useState(null);
  const [choice, setChoice] = useState(dossier.request_type ? dossier.request_type.id : "");
  const [error, setError] = useState(null);
  useEffect(() => {
    api.get("/request-types").then((ts) => { setTypes(ts); if (!choice && ts.length) setChoice(ts[0].id); }).catch(setError);
  }, []);
  const next = async () => {
    setError(null);
    try {
      onDone(await api.put(`/dossiers/${dossier.id}/request-type`, { request_type_id: choice }));
    } catch (err) {
      setError(err);
    }
  };
  return html`<div class="card-body">
    <h2>${t("wizard.type_title")}</h2><p class="muted">${t("wizard.type_lead")}</p>
    <${Alert}>${error && errorMessage(error)}<//>
    <div class="choice-list" role="radiogroup">${(types || []).map((rt) => html`<label key=${rt.id} class=${`choice ${choice === rt.id ? "selected" : ""}`}>
      <input type="radio" name="rtype" checked=${choice === rt.id} onChange=${() => setChoice(rt.id)} />
      <span><span class="choice-title">${rt.label}</span><br /><span class="choice-sub">${rt.specialty}</span></span></label>`)}</div>
    <div class="wizard-foot"><button type="button" class="btn" onClick=${onBack}>${t("common.previous")}</button>
      <button type="button" class="btn btn-primary" disabled=${!choice} onClick=${next}>${t("common.next")}</button></div>
  </div>`;
}

function ValidationStep({ dossier, onBack }) {
  return html`<div class="card-body">
    <h2>${t("wizard.validation_title")}</h2>
    <dl class="dl">
      <dt>${t("activity.col_patient")}</dt><dd>${patientName(dossier.patient)} (${formatBirthDate(dossier.patient.birth_date)})</dd>
      <dt>${t("wizard.comment")}</dt><dd>${dossier.consent_comment}</dd>
      <dt>${t("wizard.urgency")}</dt><dd>${dossier.urgent ? t("dossier.urgent") : t("common.no")}</dd>
      <dt>${t("wizard.recipients")}</dt><dd>${dossier.recipients.map((o) => o.name).join(", ")}</dd>
      <dt>${t("wizard.step_type")}</dt><dd>${dossier.request_type && dossier.request_type.label}</dd>
      <dt>${t("activity.col_state")}</dt><dd><span class=${`badge badge-${dossier.state}`}>${dossier.state_label}</span></dd>
    </dl>
    <div class="wizard-foot"><button type="button" class="btn" onClick=${onBack}>${t("common.previous")}</button>
      <button type="button" class="btn btn-primary" onClick=${() => navigate(`/app/dossiers/${dossier.id}`)}>${t("wizard.open_dossier")}</button></div>
  </div>`;
}

export function WizardPage() {
  useTitle(t("wizard.title"));
  const [step, setStep] = useState("search");
  const [creating, setCreating] = useState(false);
  const [patient, setPatient] = useState(null);
  const [dossier, setDossier] = useState(null);
  const [error, setError] = useState(null);
  const pick = (p) => {
    setPatient(p);
    setCreating(false);
    setStep("identity");
  };
  // Opened from the hospital record (/launch): the patient it sent, pre-filled.
  useEffect(() => {
    const id = new URLSearchParams(location.search).get("patient");
    if (id) api.get(`/patients/${id}`).then(pick).catch(setError);
  }, []);
  const startDossier = async () => {
    setError(null);
    try {
      if (!dossier || dossier.patient.id !== patient.id) setDossier(await api.post("/dossiers", { patient_id: patient.id }));
      setStep("consent");
    } catch (err) {
      setError(err);
    }
  };
  return html`<div class="page-head"><div><h1>${t("wizard.title")}</h1><p>${t("wizard.lead")}</p></div></div>
    <div class="card">
      <div class="card-body"><${Steps} step=${step} creating=${creating} /></div>
      <${Alert}>${error && errorMessage(error)}<//>
      ${step === "search" && html`<${SearchStep} onPick=${pick} onCreate=${() => { setCreating(true); setStep("identity"); setPatient(null); }} />`}
      ${step === "identity" && creating && !patient && html`<${CreateStep} onCreated=${(p) => setPatient(p)} onBack=${() => { setCreating(false); setStep("search"); }} />`}
      ${step === "identity" && patient && html`<div class="card-body"><h2>${t("wizard.identity_title")}</h2><${IdentityView} p=${patient} onChanged=${setPatient} />
        <div class="wizard-foot"><button type="button" class="btn" onClick=${() => { setPatient(null); setStep("search"); setCreating(false); }}>${t("common.previous")}</button>
          <button type="button" class="btn btn-primary" onClick=${startDossier}>${t("common.next")}</button></div></div>`}
      ${step === "consent" && dossier && html`<${ConsentStep} dossier=${dossier} onBack=${() => setStep("identity")} onDone=${(d) => { setDossier(d); setStep("recipients"); }} />`}
      ${step === "recipients" && dossier && html`<${RecipientsStep} dossier=${dossier} onBack=${() => setStep("consent")} onDone=${(d) => { setDossier(d); setStep("type"); }} />`}
      ${step === "type" && dossier && html`<${TypeStep} dossier=${dossier} onBack=${() => setStep("recipients")} onDone=${(d) => { setDossier(d); setStep("validation"); }} />`}
      ${step === "validation" && dossier && html`<${ValidationStep} dossier=${dossier} onBack=${() => setStep("type")} />`}
    </div>`;
}
