// The patient's way in (seed 001): from the invitation link, no account. Name confirmation,
// browser check, camera and microphone test with preview, then the lobby and the room.
import { api } from "../api.js";
import { Alert, LangSwitch, errorMessage, useTitle } from "../components.js";
import { formatDateTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { browserSupport, listDevices, openMedia, saveDeviceChoice, stopStream, watchLevel } from "../media.js";
import { navigate } from "../router.js";
import { setSession } from "../session.js";

const STEPS = ["name", "browser", "devices"];

function Progress({ step }) {
  const i = STEPS.indexOf(step);
  return html`<ol class="progress-steps">
    ${STEPS.map((s, k) => html`<li key=${s} class=${k < i ? "done" : k === i ? "current" : ""} aria-current=${k === i ? "step" : undefined}>
      ${k + 1}. ${t(`join.step_${s}`)}</li>`)}
  </ol>`;
}

function NameStep({ invitation, name, setName, onNext }) {
  const submit = (e) => {
    e.preventDefault();
    if (name.trim()) onNext();
  };
  return html`<form onSubmit=${submit}>
    <h1>${t("join.welcome")}</h1>
    <p>${t("join.invited_by", { host: invitation.host, title: invitation.room_title })}</p>
    ${invitation.scheduled_at && html`<p class="row"><${Icon} name="clock" />${t("join.scheduled", { when: formatDateTime(invitation.scheduled_at) })}</p>`}
    <div class="field">
      <label for="guest-name">${t("join.your_name")}</label>
      <input id="guest-name" class="input" value=${name} onInput=${(e) => setName(e.target.value)} required maxlength="200" autocomplete="name" />
      <span class="hint">${t("join.name_hint")}</span>
    </div>
    <button type="submit" class="btn btn-primary" disabled=${!name.trim()}>${t("join.confirm_name")}</button>
  </form>`;
}

function BrowserStep({ onNext, onBack }) {
  const b = browserSupport();
  const line = (ok, text) => html`<li><span class=${ok ? "ok" : "ko"}><${Icon} name=${ok ? "check" : "x"} /></span>${text}</li>`;
  return html`<div>
    <h1>${t("join.browser_title")}</h1>
    <ul class="check-list">
      ${line(b.supported, t("join.browser_is", { browser: b.browser === "other" ? t("join.browser_unknown") : b.browser, platform: t(`join.platform_${b.platform}`) }))}
      ${line(b.features.webrtc, t("join.feature_webrtc"))}
      ${line(b.features.media, t("join.feature_media"))}
      ${line(b.features.websocket, t("join.feature_websocket"))}
    </ul>
    ${!b.ok && html`<${Alert} kind="warning" title=${t("join.browser_unsupported")}>${t("join.browser_list")}<//>`}
    ${b.ok && html`<${Alert} kind="success">${t("join.browser_ok")}<//>`}
    <div class="row">
      <button type="button" class="btn" onClick=${onBack}>${t("common.previous")}</button>
      <button type="button" class="btn btn-primary" onClick=${onNext}>${b.ok ? t("common.next") : t("join.continue_anyway")}</button>
    </div>
  </div>`;
}

function DevicesStep({ onBack, onJoin, busy }) {
  const video = useRef(null);
  const meter = useRef(null);
  const [stream, setStream] = useState(null);
  const [devices, setDevices] = useState({ cameras: [], microphones: [] });
  const [cameraId, setCameraId] = useState("");
  const [microphoneId, setMicrophoneId] = useState("");
  const [camOn, setCamOn] = useState(true);
  const [micOn, setMicOn] = useState(true);
  const [error, setError] = useState(null);
  const [heard, setHeard] = useState(false);

  useEffect(() => {
    let s = null;
    let stopLevel = () => {};
    let alive = true;
    openMedia({ cameraId, microphoneId })
      .then(async (st) => {
        if (!alive) return stopStream(st);
        s = st;
        setStream(st);
        setError(null);
        if (video.current) video.current.srcObject = st;
        setDevices(await listDevices());
        stopLevel = watchLevel(st, (level) => {
          if (meter.current) meter.current.style.width = `${Math.round(level * 100)}%`;
          if (level > 0.05) setHeard(true);
        });
      })
      .catch((err) => alive && setError(err));
    return () => {
      alive = false;
      stopLevel();
      stopStream(s);
    };
  }, [cameraId, microphoneId]);

  useEffect(() => {
    if (!stream) return;
    stream.getVideoTracks().forEach((tr) => (tr.enabled = camOn));
    stream.getAudioTracks().forEach((tr) => (tr.enabled = micOn));
  }, [stream, camOn, micOn]);

  const join = () => {
    const vt = stream && stream.getVideoTracks()[0];
    const at = stream && stream.getAudioTracks()[0];
    saveDeviceChoice({
      cameraId: cameraId || (vt && vt.getSettings().deviceId) || "",
      microphoneId: microphoneId || (at && at.getSettings().deviceId) || "",
      camOn,
      micOn,
    });
    onJoin();
  };
  const current = (kind) => {
    const tr = stream && (kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0]);
    return (tr && tr.getSettings && tr.getSettings().deviceId) || "";
  };
  const denied = error && (error.name === "NotAllowedError" || error.name === "SecurityError");
  return html`<div>
    <h1>${t("join.devices_title")}</h1>
    <p class="muted">${t("join.devices_lead")}</p>
    ${error && html`<${Alert} kind="warning" title=${t(denied ? "join.media_denied_title" : "join.media_error_title")}>${t(denied ? "join.media_denied" : "join.media_error")}<//>`}
    <div class="preview-wrap">
      <div>
        <div class="preview"><video ref=${video} autoplay playsinline muted aria-label=${t("join.preview_label")}></video></div>
        <div class="row preview-tools">
          <button type="button" class="btn btn-sm" aria-pressed=${camOn ? "true" : "false"} onClick=${() => setCamOn(!camOn)}>
            <${Icon} name=${camOn ? "video" : "videoOff"} />${camOn ? t("room.camera_off") : t("room.camera_on")}</button>
          <button type="button" class="btn btn-sm" aria-pressed=${micOn ? "true" : "false"} onClick=${() => setMicOn(!micOn)}>
            <${Icon} name=${micOn ? "mic" : "micOff"} />${micOn ? t("room.mic_off") : t("room.mic_on")}</button>
        </div>
      </div>
      <div>
        <div class="field">
          <label for="cam-select">${t("room.camera")}</label>
          <select id="cam-select" class="input" value=${cameraId || current("video")} onChange=${(e) => setCameraId(e.target.value)}>
            ${devices.cameras.map((d, i) => html`<option value=${d.deviceId}>${d.label || `${t("room.camera")} ${i + 1}`}</option>`)}
          </select>
        </div>
        <div class="field">
          <label for="mic-select">${t("room.microphone")}</label>
          <select id="mic-select" class="input" value=${microphoneId || current("audio")} onChange=${(e) => setMicrophoneId(e.target.value)}>
            ${devices.microphones.map((d, i) => html`<option value=${d.deviceId}>${d.label || `${t("room.microphone")} ${i + 1}`}</option>`)}
          </select>
        </div>
        <div class="field">
          <span class="label" id="meter-label">${t("join.mic_level")}</span>
          <div class="meter" role="presentation"><span ref=${meter}></span></div>
          <span class="hint">${heard ? t("join.mic_heard") : t("join.mic_speak")}</span>
        </div>
      </div>
    </div>
    <div class="row-between">
      <button type="button" class="btn" onClick=${onBack}>${t("common.previous")}</button>
      <button type="button" class="btn btn-primary" onClick=${join} disabled=${busy}><${Icon} name="door" />${t("join.enter")}</button>
    </div>
  </div>`;
}

export function JoinPage({ token }) {
  useTitle(t("join.title"));
  const [invitation, setInvitation] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [step, setStep] = useState("name");
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);

  useEffect(() => {
    api
      .get(`/invitations/${encodeURIComponent(token)}`)
      .then((inv) => {
        setInvitation(inv);
        setName(inv.name || "");
      })
      .catch(setLoadError);
  }, [token]);

  const enter = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.post(`/invitations/${encodeURIComponent(token)}/accept`, { name: name.trim() });
      setSession({ kind: "guest", id: r.guest_id, name: r.name, role: "guest" });
      navigate(`/app/rooms/${r.room_id}`, { replace: true });
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  let body;
  if (loadError) {
    const gone = loadError.status === 410;
    body = html`<div class="waiting"><${Icon} name="alert" /><h1>${t(gone ? "join.gone_title" : "join.invalid_title")}</h1>
      <p>${gone ? errorMessage(loadError) : t("join.invalid_body")}</p></div>`;
  } else if (!invitation) {
    body = html`<p class="muted" role="status">${t("common.loading")}</p>`;
  } else {
    body = html`<${Progress} step=${step} />
      <${Alert}>${error && errorMessage(error)}<//>
      ${step === "name" && html`<${NameStep} invitation=${invitation} name=${name} setName=${setName} onNext=${() => setStep("browser")} />`}
      ${step === "browser" && html`<${BrowserStep} onBack=${() => setStep("name")} onNext=${() => setStep("devices")} />`}
      ${step === "devices" && html`<${DevicesStep} onBack=${() => setStep("browser")} onJoin=${enter} busy=${busy} />`}`;
  }
  return html`<div class="join-page">
    <header class="topbar"><span class="brand"><span class="brand-mark" aria-hidden="true"></span>Consilium</span><span class="spacer"></span><${LangSwitch} /></header>
    <main class="join-main" id="main"><div class="card join-card"><div class="card-body">${body}</div></div></main>
    <footer class="footer">${t("join.footer")}</footer>
  </div>`;
}
