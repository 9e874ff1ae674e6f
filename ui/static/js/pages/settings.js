// Settings (seed 000 4.1.2 "Paramètres"): my profile, my authenticator app with its QR code,
// my signature picture ("Charger une signature"), my notification choices, the language.
import { api, isMissing } from "../api.js";
import { Alert, Dialog, errorMessage, toast, useTitle } from "../components.js";
import { currentLang, formatDateTime, setLang, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useRef, useState } from "../lib.js";

const KINDS = ["expertise_request", "expertise_report", "closure_request", "room_invitation", "chat_message"];

function Section({ id, title, icon, children, lead }) {
  return html`<section class="card" aria-labelledby=${id}>
    <div class="card-header row"><${Icon} name=${icon} /><h2 id=${id}>${title}</h2></div>
    <div class="card-body">${lead && html`<p class="muted">${lead}</p>`}${children}</div>
  </section>`;
}

// Changing a second factor needs the password and a code again (the server answers 403
// `reauth_required` otherwise): `guarded(fn)` runs `fn`, opens the dialog on that answer and
// retries once it succeeded. A cancelled dialog rejects with `reauth_cancelled`.
let openReauth = null;
function guarded(fn) {
  return fn().catch((err) => {
    if (err.code !== "reauth_required" || !openReauth) throw err;
    return openReauth().then(fn);
  });
}
const shown = (err) => (err && err.code === "reauth_cancelled" ? null : err);

function ReauthDialog({ me }) {
  const [pending, setPending] = useState(null); // {resolve, reject}
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [sentTo, setSentTo] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  useEffect(() => {
    openReauth = () =>
      new Promise((resolve, reject) => {
        setPassword("");
        setCode("");
        setSentTo(null);
        setError(null);
        setPending({ resolve, reject });
      });
    return () => {
      openReauth = null;
    };
  }, []);
  const totp = me.totp_enabled;
  const channel = me.otp_channel === "sms" && me.mobile ? "sms" : "email";
  const send = async () => {
    setBusy(true);
    setError(null);
    try {
      setSentTo((await api.post("/me/reauth/code", { channel })).sent_to);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.post("/me/reauth", { password, method: totp ? "totp" : "otp", code: code.trim() });
      pending.resolve();
      setPending(null);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const cancel = () => {
    if (pending) pending.reject({ code: "reauth_cancelled" });
    setPending(null);
  };
  return html`<${Dialog} open=${!!pending} title=${t("reauth.title")} onClose=${cancel}>
    <form onSubmit=${submit}>
      <p>${t("reauth.lead")}</p>
      <${Alert}>${error && errorMessage(error)}<//>
      <div class="field"><label for="reauth-password">${t("reauth.password")}</label>
        <input id="reauth-password" class="input" type="password" autocomplete="current-password" required value=${password} onInput=${(e) => setPassword(e.target.value)} /></div>
      ${!totp &&
      html`<p class="row"><button type="button" class="btn" onClick=${send} disabled=${busy}>${sentTo ? t("reauth.resend") : t(`reauth.send_${channel}`)}</button>
        ${sentTo && html`<span class="small muted" role="status">${t("reauth.sent_to", { to: sentTo })}</span>`}</p>`}
      <div class="field"><label for="reauth-code">${totp ? t("reauth.code_totp") : t("reauth.code")}</label>
        <input id="reauth-code" class="input input-code" inputmode="numeric" autocomplete="one-time-code" maxlength="20" required value=${code} onInput=${(e) => setCode(e.target.value)} /></div>
      <div class="row">
        <button type="submit" class="btn btn-primary" disabled=${busy || !password || code.trim().length < 6}>${t("reauth.confirm")}</button>
        <button type="button" class="btn" onClick=${cancel}>${t("common.cancel")}</button>
      </div>
    </form>
  <//>`;
}

function Profile({ me, onChange }) {
  const [error, setError] = useState(null);
  const setChannel = async (otp_channel) => {
    setError(null);
    try {
      onChange(await guarded(() => api.patch("/me", { otp_channel })));
      toast(t("common.saved"));
    } catch (err) {
      setError(shown(err));
    }
  };
  return html`<${Section} id="s-profile" title=${t("settings.profile")} icon="users">
    <dl class="dl">
      <dt>${t("settings.name")}</dt><dd>${me.display_name}</dd>
      <dt>${t("login.email")}</dt><dd>${me.email}</dd>
      ${me.rpps && html`<dt>RPPS</dt><dd class="mono">${me.rpps}</dd>`}
      ${me.specialty && html`<dt>${t("settings.specialty")}</dt><dd>${me.specialty}</dd>`}
      ${me.establishment && html`<dt>${t("settings.establishment")}</dt><dd>${me.establishment}</dd>`}
      ${me.mobile && html`<dt>${t("settings.mobile")}</dt><dd>${me.mobile}</dd>`}
      ${me.last_login_at && html`<dt>${t("settings.last_login")}</dt><dd>${formatDateTime(me.last_login_at)}</dd>`}
    </dl>
    <${Alert}>${error && errorMessage(error)}<//>
    <div class="field">
      <label for="otp-channel">${t("settings.preferred_channel")}</label>
      <select id="otp-channel" class="input" value=${me.otp_channel} onChange=${(e) => setChannel(e.target.value)}>
        <option value="email">${t("login.method_email")}</option>
        ${me.mobile && html`<option value="sms">${t("login.method_sms")}</option>`}
        ${me.totp_enabled && html`<option value="totp">${t("login.method_totp")}</option>`}
      </select>
    </div>
  <//>`;
}

function downloadText(name, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function Authenticator({ me, reload }) {
  const [enrol, setEnrol] = useState(null); // {secret, otpauth_uri, qr_svg}
  const [codes, setCodes] = useState(null);
  const [code, setCode] = useState("");
  const [removing, setRemoving] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (fn) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(shown(err));
    } finally {
      setBusy(false);
    }
  };
  const start = () => run(async () => setEnrol(await guarded(() => api.post("/me/totp"))));
  const confirm = (e) => {
    e.preventDefault();
    run(async () => {
      const r = await api.post("/me/totp/confirm", { code: code.trim() });
      setCodes(r.recovery_codes);
      setEnrol(null);
      setCode("");
      reload();
    });
  };
  const remove = (e) => {
    e.preventDefault();
    run(async () => {
      await guarded(() => api.del("/me/totp", { json: { code: code.trim() } }));
      setRemoving(false);
      setCode("");
      toast(t("settings.totp_removed"));
      reload();
    });
  };
  return html`<${Section} id="s-totp" title=${t("settings.totp")} icon="key" lead=${t("settings.totp_lead")}>
    <${Alert}>${error && errorMessage(error)}<//>
    ${codes && html`<div class="alert alert-success" role="status">
      <strong>${t("settings.totp_enabled_now")}</strong>
      <p>${t("settings.recovery_codes_once")}</p>
      <div class="codes" aria-label=${t("settings.recovery_codes")}>${codes.map((c) => html`<span key=${c}>${c}</span>`)}</div>
      <p class="row"><button type="button" class="btn btn-sm" onClick=${() => downloadText("consilium-codes-de-secours.txt", codes.join("\n") + "\n")}>
        <${Icon} name="download" />${t("settings.download_codes")}</button></p>
    </div>`}
    ${!enrol && !me.totp_enabled && html`<p><span class="badge badge-draft">${t("settings.totp_off")}</span></p>
      <button type="button" class="btn btn-primary" onClick=${start} disabled=${busy}><${Icon} name="key" />${t("settings.totp_setup")}</button>`}
    ${enrol && html`<div class="qr-box">
      <img src=${enrol.qr_svg} alt=${t("settings.qr_alt")} width="200" height="200" />
      <div class="grow">
        <ol class="small">
          <li>${t("settings.totp_step1")}</li>
          <li>${t("settings.totp_step2")}</li>
          <li>${t("settings.totp_step3")}</li>
        </ol>
        <p class="small muted">${t("settings.totp_manual")}</p>
        <p class="secret" data-testid="totp-secret">${enrol.secret}</p>
        <form onSubmit=${confirm}>
          <div class="field">
            <label for="totp-code">${t("login.code")}</label>
            <input id="totp-code" class="input input-code" inputmode="numeric" autocomplete="one-time-code" maxlength="6"
              value=${code} onInput=${(e) => setCode(e.target.value)} required />
          </div>
          <div class="row">
            <button type="submit" class="btn btn-primary" disabled=${busy || code.trim().length < 6}>${t("settings.totp_confirm")}</button>
            <button type="button" class="btn" onClick=${() => setEnrol(null)}>${t("common.cancel")}</button>
          </div>
        </form>
      </div>
    </div>`}
    ${me.totp_enabled && !codes && html`<p class="row"><span class="badge badge-closed">${t("settings.totp_on")}</span>
        <span class="small muted">${t("settings.recovery_left", { count: me.recovery_codes_left })}</span></p>
      ${removing
        ? html`<form onSubmit=${remove}>
            <div class="field">
              <label for="totp-remove-code">${t("settings.totp_remove_code")}</label>
              <input id="totp-remove-code" class="input" autocomplete="one-time-code" value=${code} onInput=${(e) => setCode(e.target.value)} required />
            </div>
            <div class="row"><button type="submit" class="btn btn-danger" disabled=${busy || code.trim().length < 6}>${t("settings.totp_remove")}</button>
              <button type="button" class="btn" onClick=${() => setRemoving(false)}>${t("common.cancel")}</button></div>
          </form>`
        : html`<button type="button" class="btn" onClick=${() => setRemoving(true)}>${t("settings.totp_remove")}</button>`}`}
  <//>`;
}

function Signature() {
  const [version, setVersion] = useState(Date.now());
  const [state, setState] = useState("loading"); // loading | none | present | unavailable
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const input = useRef(null);
  useEffect(() => {
    fetch(`/api/v1/me/signature?v=${version}`, { method: "GET", credentials: "same-origin" })
      .then((r) => setState(r.ok ? "present" : r.status === 404 ? "none" : "unavailable"))
      .catch(() => setState("unavailable"));
  }, [version]);
  const upload = async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    setBusy(true);
    setError(null);
    try {
      await api.putFile("/me/signature", file);
      setVersion(Date.now());
      toast(t("settings.signature_saved"));
    } catch (err) {
      setError(isMissing(err) ? { code: "unavailable" } : err);
    } finally {
      setBusy(false);
      e.target.value = "";
    }
  };
  const remove = async () => {
    setError(null);
    try {
      await api.del("/me/signature");
      setVersion(Date.now());
    } catch (err) {
      setError(err);
    }
  };
  return html`<${Section} id="s-signature" title=${t("settings.signature")} icon="pen" lead=${t("settings.signature_lead")}>
    <${Alert}>${error && (error.code === "unavailable" ? t("common.unavailable") : errorMessage(error))}<//>
    ${state === "present"
      ? html`<p><img class="signature-preview" src=${`/api/v1/me/signature?v=${version}`} alt=${t("settings.signature_alt")} /></p>`
      : html`<p class="muted">${t("settings.signature_none")}</p>`}
    <input ref=${input} id="signature-file" class="visually-hidden" tabindex="-1" aria-label=${t("settings.signature_load")} type="file" accept="image/png,image/jpeg" onChange=${upload} />
    <div class="row">
      <button type="button" class="btn btn-primary" disabled=${busy} onClick=${() => input.current.click()}>
        <${Icon} name="pen" />${t("settings.signature_load")}</button>
      ${state === "present" && html`<button type="button" class="btn" onClick=${remove}>${t("common.remove")}</button>`}
    </div>
    <p class="small muted">${t("settings.signature_hint")}</p>
  <//>`;
}

function Notifications({ me, onChange }) {
  const [error, setError] = useState(null);
  const set = async (kind, channel) => {
    setError(null);
    try {
      onChange(await api.patch("/me", { notifications: { ...me.notifications, [kind]: channel } }));
      toast(t("common.saved"));
    } catch (err) {
      setError(err);
    }
  };
  return html`<${Section} id="s-notify" title=${t("settings.notifications")} icon="bell" lead=${t("settings.notifications_lead")}>
    <${Alert}>${error && errorMessage(error)}<//>
    <div class="table-wrap"><table class="table">
      <thead><tr><th scope="col">${t("settings.notify_event")}</th><th scope="col">${t("settings.notify_channel")}</th></tr></thead>
      <tbody>${KINDS.filter((k) => k in (me.notifications || {})).map((k) => html`<tr key=${k}>
        <td><label for=${`notify-${k}`}>${t(`notify.${k}`)}</label></td>
        <td><select id=${`notify-${k}`} class="input" value=${me.notifications[k]} onChange=${(e) => set(k, e.target.value)}>
          <option value="email">${t("settings.channel_email")}</option>
          <option value="sms" disabled=${!me.mobile}>${t("settings.channel_sms")}</option>
          <option value="none">${t("settings.channel_none")}</option>
        </select></td></tr>`)}</tbody>
    </table></div>
  <//>`;
}

function Password() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [confirm, setConfirm] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const mismatch = confirm && next !== confirm;
  const submit = async (e) => {
    e.preventDefault();
    if (mismatch) return;
    setBusy(true);
    setError(null);
    try {
      await api.post("/me/password", { current_password: current, new_password: next });
      setCurrent("");
      setNext("");
      setConfirm("");
      toast(t("settings.password_changed"));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Section} id="s-password" title=${t("settings.password")} icon="lock" lead=${t("settings.password_lead")}>
    <form onSubmit=${submit}>
      <${Alert}>${error && errorMessage(error)}<//>
      <div class="field"><label for="pw-current">${t("settings.current_password")}</label>
        <input id="pw-current" class="input" type="password" autocomplete="current-password" required value=${current} onInput=${(e) => setCurrent(e.target.value)} /></div>
      <div class="field"><label for="pw-new">${t("reset.new_password")}</label>
        <input id="pw-new" class="input" type="password" autocomplete="new-password" required minlength="10" value=${next} onInput=${(e) => setNext(e.target.value)} aria-describedby="pw-rule" />
        <span id="pw-rule" class="hint">${t("reset.rule", { min: 10 })}</span></div>
      <div class="field"><label for="pw-confirm">${t("reset.confirm_password")}</label>
        <input id="pw-confirm" class="input" type="password" autocomplete="new-password" required value=${confirm} onInput=${(e) => setConfirm(e.target.value)} aria-invalid=${mismatch ? "true" : undefined} aria-describedby="pw-mismatch" />
        <span id="pw-mismatch" class="hint" role="status">${mismatch ? t("reset.mismatch") : ""}</span></div>
      <button type="submit" class="btn btn-primary" disabled=${busy || !current || !next || !confirm || mismatch}>${t("reset.save")}</button>
    </form>
  <//>`;
}

export function SettingsPage() {
  useTitle(t("nav.settings"));
  const [me, setMe] = useState(null);
  const [error, setError] = useState(null);
  const load = () =>
    api
      .get("/me")
      .then(setMe)
      .catch((err) => setError(err));
  useEffect(() => {
    load();
  }, []);
  const changeLang = async (e) => {
    await setLang(e.target.value);
    window.dispatchEvent(new Event("consilium:lang"));
  };
  return html`<div class="page-head"><div><h1>${t("settings.title")}</h1><p>${t("settings.lead")}</p></div></div>
    <${Alert}>${error && (isMissing(error) ? t("common.unavailable") : errorMessage(error))}<//>
    <div class="settings-grid">
      ${me && html`<${ReauthDialog} me=${me} />`}
      ${me && html`<${Profile} me=${me} onChange=${setMe} />`}
      ${me && html`<${Authenticator} me=${me} reload=${load} />`}
      <${Password} />
      <${Signature} />
      ${me && html`<${Notifications} me=${me} onChange=${setMe} />`}
      <${Section} id="s-lang" title=${t("settings.language")} icon="chat">
        <div class="field"><label for="lang">${t("settings.language")}</label>
          <select id="lang" class="input" value=${currentLang()} onChange=${changeLang}>
            <option value="fr" lang="fr">Français</option><option value="en" lang="en">English</option>
          </select></div>
      <//>
    </div>`;
}
