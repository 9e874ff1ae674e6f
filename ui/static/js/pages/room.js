// The room (seed 001, 3.2): video grid and active-speaker view, camera/microphone on/off and
// device choice, screen share with a large view, chat (room and direct), send a document,
// invite by e-mail/SMS, screenshot, picture-in-picture, participants with host moderation,
// lobby with admit/refuse and an arrival sound, network quality, leave (red phone).
import { api } from "../api.js";
import { Alert, Dialog, errorMessage, initials, toast, useTitle } from "../components.js";
import { formatTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useMemo, useRef, useState } from "../lib.js";
import { chime, listDevices, loadDeviceChoice, openMedia, stopStream } from "../media.js";
import { RoomClient, VisibilityTracker, uuid4 } from "../room-client.js";
import { navigate } from "../router.js";
import { SendDocumentDialog } from "./room-send.js";

function Video({ stream, muted, label, className }) {
  const ref = useRef(null);
  useEffect(() => {
    if (ref.current && ref.current.srcObject !== stream) ref.current.srcObject = stream || null;
  }, [stream]);
  return html`<video ref=${ref} class=${className} autoplay playsinline muted=${muted} aria-label=${label}></video>`;
}

function NetBars({ quality }) {
  if (!quality) return null;
  return html`<span class=${`net q-${quality}`} role="img" aria-label=${t(`room.net_${quality}`)} title=${t(`room.net_${quality}`)}><i></i><i></i><i></i></span>`;
}

function captureFrame(video) {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth || 640;
  canvas.height = video.videoHeight || 480;
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

function Tile({ p, stream, local, screen, speaking, quality, onShot, onPip, vis }) {
  const ref = useRef(null);
  // A remote tile nobody sees gets its video paused on the server (see VisibilityTracker).
  const visKey = `${p.participant_id}:${screen ? "screen" : "camera"}`;
  useEffect(() => (vis && !local && ref.current ? vis.observe(visKey, ref.current) : undefined), [vis, visKey, local]);
  const hasVideo = stream && stream.getVideoTracks().some((tr) => tr.readyState === "live") && (screen || !p.media || p.media.video !== false);
  const name = screen ? t("room.screen_of", { name: p.name }) : local ? t("room.you", { name: p.name }) : p.name;
  return html`<div ref=${ref} class=${`tile ${local ? "local" : ""} ${screen ? "screen" : ""} ${speaking ? "speaking" : ""}`} data-participant=${p.participant_id} data-source=${screen ? "screen" : "camera"}>
    ${stream && html`<${Video} stream=${stream} muted=${local} label=${name} className=${hasVideo ? "" : "hidden"} />`}
    ${!hasVideo && html`<div class="placeholder"><span class="avatar">${initials(p.name)}</span></div>`}
    <div class="name">
      ${p.media && !screen && !p.media.audio && html`<${Icon} name="micOff" label=${t("room.muted")} />`}
      <span>${name}</span><${NetBars} quality=${quality} />
    </div>
    ${hasVideo && html`<div class="tile-tools">
      <button type="button" class="btn btn-sm btn-icon" aria-label=${t("room.screenshot_of", { name })} onClick=${() => onShot(ref.current.querySelector("video"), name)}><${Icon} name="camera" /></button>
      <button type="button" class="btn btn-sm btn-icon" aria-label=${t("room.pip_of", { name })} onClick=${() => onPip(ref.current.querySelector("video"))}><${Icon} name="pip" /></button>
    </div>`}
  </div>`;
}

function Chat({ messages, me, participants, onSend, dossierId, to, setTo }) {
  const [text, setText] = useState("");
  const list = useRef(null);
  useEffect(() => {
    if (list.current) list.current.scrollTop = list.current.scrollHeight;
  }, [messages.length]);
  const submit = (e) => {
    e.preventDefault();
    if (!text.trim()) return;
    onSend(text.trim(), to || null);
    setText("");
  };
  const others = participants.filter((p) => p.participant_id !== me);
  return html`<div class="side-body" ref=${list} aria-live="polite">
      ${!messages.length && html`<p class="muted small">${t("room.chat_empty")}</p>`}
      ${messages.map((m) => html`<div key=${m.id} class=${`chat-msg ${m.mine ? "mine" : ""} ${m.to ? "direct" : ""}`}>
        <div class="who">${m.mine ? t("room.me") : m.sender.name}${m.to ? ` → ${m.to.name}` : ""} · ${formatTime(m.created_at)}</div>
        <div class="bubble">${m.text}
          ${m.attachment && html`<div><a href=${m.attachment.url} download=${m.attachment.name} class="row chat-file"><${Icon} name="file" />${m.attachment.name}</a></div>`}
          ${!m.attachment && m.document && html`<div><a href=${`/api/v1/dossiers/${dossierId}/documents/${m.document.id}/content`} download=${m.document.name} class="row chat-file"><${Icon} name="file" />${m.document.name}</a></div>`}
        </div>
      </div>`)}
    </div>
    <form class="side-foot" onSubmit=${submit}>
      <div class="field">
        <label for="chat-to">${t("room.chat_to")}</label>
        <select id="chat-to" class="input" value=${to} onChange=${(e) => setTo(e.target.value)}>
          <option value="">${t("room.chat_everyone")}</option>
          ${others.map((p) => html`<option value=${p.participant_id}>${p.name}</option>`)}
        </select>
      </div>
      <div class="row">
        <label for="chat-text" class="visually-hidden">${t("room.chat_message")}</label>
        <input id="chat-text" class="input grow" value=${text} onInput=${(e) => setText(e.target.value)} placeholder=${t("room.chat_placeholder")} autocomplete="off" maxlength="4000" />
        <button type="submit" class="btn btn-primary btn-icon" aria-label=${t("common.send")}><${Icon} name="send" /></button>
      </div>
    </form>`;
}

function People({ participants, me, isHost, lobby, onAdmit, onRefuse, onModerate }) {
  return html`<div class="side-body">
    ${isHost && lobby.length > 0 && html`<h3>${t("room.lobby_title", { count: lobby.length })}</h3>
      <ul class="people">${lobby.map((g) => html`<li key=${g.guest_id}>
        <span class="avatar">${initials(g.name)}</span><span class="grow">${g.name}</span>
        <button type="button" class="btn btn-primary btn-sm" onClick=${() => onAdmit(g)}>${t("room.admit")}</button>
        <button type="button" class="btn btn-sm" onClick=${() => onRefuse(g)}>${t("room.refuse")}</button>
      </li>`)}</ul>`}
    <h3>${t("room.participants_count", { count: participants.length })}</h3>
    <ul class="people">${participants.map((p) => html`<li key=${p.participant_id}>
      <span class="avatar">${initials(p.name)}</span>
      <span class="grow">${p.name}${p.participant_id === me ? ` (${t("room.me")})` : ""}<br />
        <span class="small muted">${t(`room.role_${p.role}`)}${p.media && !p.media.audio ? ` · ${t("room.muted")}` : ""}${p.connected === false ? ` · ${t("room.reconnecting")}` : ""}</span></span>
      ${isHost && p.participant_id !== me && html`<span class="row">
        ${p.media && p.media.audio
          ? html`<button type="button" class="btn btn-sm" onClick=${() => onModerate("room:mute", p)}>${t("room.mute")}</button>`
          : html`<button type="button" class="btn btn-sm" onClick=${() => onModerate("room:ask_unmute", p)}>${t("room.ask_unmute")}</button>`}
        <button type="button" class="btn btn-sm btn-danger" onClick=${() => onModerate("room:remove", p)}>${t("room.remove")}</button>
      </span>`}
    </li>`)}</ul>
  </div>`;
}

function InviteDialog({ open, onClose, roomId }) {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [mobile, setMobile] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.post(`/rooms/${roomId}/invitations`, { name: name.trim(), email: email.trim() || null, mobile: mobile.trim() || null });
      toast(t("room.invite_sent", { name: name.trim() }));
      setName("");
      setEmail("");
      setMobile("");
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Dialog} open=${open} title=${t("room.invite_title")} onClose=${onClose}>
    <form onSubmit=${submit}>
      <p class="small muted">${t("room.invite_lead")}</p>
      <${Alert}>${error && errorMessage(error)}<//>
      <div class="field"><label for="inv-name">${t("room.invite_name")}</label>
        <input id="inv-name" class="input" value=${name} onInput=${(e) => setName(e.target.value)} required /></div>
      <div class="field"><label for="inv-email">${t("room.invite_email")}</label>
        <input id="inv-email" class="input" type="email" value=${email} onInput=${(e) => setEmail(e.target.value)} /></div>
      <div class="field"><label for="inv-mobile">${t("room.invite_mobile")}</label>
        <input id="inv-mobile" class="input" type="tel" value=${mobile} onInput=${(e) => setMobile(e.target.value)} placeholder="+33 6 12 34 56 78" /></div>
      <button type="submit" class="btn btn-primary" disabled=${busy || !name.trim() || (!email.trim() && !mobile.trim())}>${t("room.invite_send")}</button>
    </form>
  <//>`;
}

function ShotDialog({ shot, onClose, dossierId, roomId }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const url = useMemo(() => (shot ? URL.createObjectURL(shot.blob) : null), [shot]);
  useEffect(() => () => url && URL.revokeObjectURL(url), [url]);
  const file = async () => {
    setBusy(true);
    setError(null);
    try {
      // Through the room: the capture is kept with the call's files and filed into its
      // dossier in the same transaction (rooms/attachments.py).
      const form = new FormData();
      form.append("source", "screenshot");
      form.append("file_into_dossier", "true");
      form.append("file", shot.blob, shot.filename);
      await api.upload(`/rooms/${roomId}/attachments`, form);
      toast(t("room.shot_filed"));
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Dialog} open=${!!shot} title=${t("room.screenshot")} onClose=${onClose}
    footer=${shot && html`
      <a class="btn" href=${url} download=${shot.filename}><${Icon} name="download" />${t("common.download")}</a>
      ${dossierId && html`<button type="button" class="btn btn-primary" disabled=${busy} onClick=${file}><${Icon} name="folder" />${t("room.shot_to_dossier")}</button>`}`}>
    <${Alert}>${error && errorMessage(error)}<//>
    ${url && html`<img src=${url} alt=${shot.label} class="shot-preview" />`}
  <//>`;
}

const QUALITY_ORDER = { good: 0, fair: 1, poor: 2 };
/** Chat messages merged by id (a message is never shown twice), in the order they were sent. */
function mergeMessages(xs, incoming) {
  const seen = new Set(xs.map((m) => m.id));
  const add = incoming.filter((m) => !seen.has(m.id) && (seen.add(m.id), true));
  if (!add.length) return xs;
  return [...xs, ...add].sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
}

/** While the connection is being restored, or once we gave up: a banner over the videos
 * (inside a live region that is always there, so screen readers announce the change). */
function ConnectionBanner({ status, onRetry }) {
  return html`<div class="conn-live" aria-live="polite">
    ${status === "reconnecting" && html`<div class="conn-banner" role="status"><span class="conn-spinner" aria-hidden="true"></span>${t("room.connection_lost")}</div>`}
    ${status === "failed" && html`<div class="conn-banner failed" role="alert">
      <span><strong>${t("room.reconnect_failed_title")}</strong> ${t("room.reconnect_failed_body")}</span>
      <button type="button" class="btn btn-sm" onClick=${onRetry}>${t("room.retry")}</button>
    </div>`}
  </div>`;
}

function qualityOf(report) {
  if (!report) return null;
  let worst = "good";
  for (const s of report.subscribed || []) {
    const q = s.loss > 0.08 || (s.rtt_ms || 0) > 400 ? "poor" : s.loss > 0.02 || (s.rtt_ms || 0) > 150 ? "fair" : "good";
    if (QUALITY_ORDER[q] > QUALITY_ORDER[worst]) worst = q;
  }
  if (report.state && report.state !== "connected") worst = "poor";
  return worst;
}

export function RoomPage({ roomId, session }) {
  const isGuest = session.kind === "guest";
  const client = useMemo(() => new RoomClient(roomId), [roomId]);
  const vis = useMemo(() => new VisibilityTracker((key, visible) => client.setVideoHidden(key, !visible)), [client]);
  useEffect(() => () => vis.destroy(), [vis]);
  const [chatTo, setChatTo] = useState("");
  const [phase, setPhase] = useState("connecting"); // connecting | lobby | joined | refused | removed | ended | left | error
  const [phaseError, setPhaseError] = useState(null);
  const [room, setRoom] = useState(null);
  const [me, setMe] = useState(null);
  const [role, setRole] = useState(null);
  const [participants, setParticipants] = useState([]);
  const [lobby, setLobby] = useState([]);
  const [messages, setMessages] = useState([]);
  const messagesRef = useRef(messages);
  messagesRef.current = messages;
  const [conn, setConn] = useState("connected"); // connected | reconnecting | failed
  const [unread, setUnread] = useState(0);
  const [panel, setPanel] = useState(null);
  const [layout, setLayout] = useState("grid");
  const [local, setLocal] = useState(null);
  const [screen, setScreen] = useState(null);
  const [remote, setRemote] = useState({}); // `${participant_id}:${source}` → MediaStream
  const [speaker, setSpeaker] = useState(null);
  const [quality, setQuality] = useState({});
  const [devices, setDevices] = useState({ cameras: [], microphones: [] });
  const [choice, setChoice] = useState(() => ({ camOn: true, micOn: true, ...loadDeviceChoice() }));
  const currentDevice = (kind) => {
    const tr = local && (kind === "video" ? local.getVideoTracks()[0] : local.getAudioTracks()[0]);
    return (tr && tr.getSettings && tr.getSettings().deviceId) || "";
  };
  const [mediaError, setMediaError] = useState(null);
  const [rtcNote, setRtcNote] = useState(null);
  const [inviteOpen, setInviteOpen] = useState(false);
  const [sendOpen, setSendOpen] = useState(false);
  const [devicesOpen, setDevicesOpen] = useState(false);
  const [shot, setShot] = useState(null);
  const localRef = useRef(null);
  localRef.current = local;
  const panelRef = useRef(panel);
  panelRef.current = panel;
  useTitle(room ? room.title : t("room.title"));

  const isHost = role === "host";
  const upsert = (p) => setParticipants((xs) => [...xs.filter((x) => x.participant_id !== p.participant_id), p]);

  // Local camera and microphone, opened once.
  useEffect(() => {
    let alive = true;
    openMedia({ cameraId: choice.cameraId, microphoneId: choice.microphoneId })
      .then(async (s) => {
        if (!alive) return stopStream(s);
        s.getVideoTracks().forEach((tr) => (tr.enabled = choice.camOn));
        s.getAudioTracks().forEach((tr) => (tr.enabled = choice.micOn));
        setLocal(s);
        setDevices(await listDevices());
      })
      .catch((e) => alive && setMediaError(e));
    return () => {
      alive = false;
    };
  }, []);
  useEffect(() => () => stopStream(localRef.current), []);

  // The room:join acknowledgement, first or after a reconnect: who is here, the lobby, and
  // the chat (what was said while we were away, each message once).
  const applyJoin = async (ack) => {
    setRoom(ack.room);
    if (ack.status === "lobby") {
      setPhase("lobby");
      return;
    }
    setMe(ack.participant_id);
    setRole(ack.role);
    setParticipants(ack.participants || []);
    setLobby(ack.lobby || []);
    setPhase("joined");
    const known = new Set(messagesRef.current.map((m) => m.id));
    try {
      const page = ack.chat || (await client.call("chat:history", { limit: 50 }));
      const fresh = (await client.chatSince(page, known)).filter((m) => !known.has(m.id)).map((m) => ({ ...m, mine: m.sender.id === session.id }));
      setMessages((xs) => mergeMessages(xs, fresh));
      if (known.size && panelRef.current !== "chat") setUnread((n) => n + fresh.filter((m) => !m.mine).length);
    } catch {
      /* the chat stays as it was */
    }
  };
  const leftPhase = (e) => {
    setPhaseError(e);
    setPhase({ removed: "removed", room_closed: "ended" }[e.code] || "error");
  };
  const enterRoom = async () => {
    try {
      await applyJoin(await client.join());
    } catch (e) {
      leftPhase(e);
    }
  };

  useEffect(() => {
    const offs = [
      // The first join; later ones are the client's (reconnects), reported as "rejoined".
      client.on("connected", () => !client.joinedOnce && enterRoom()),
      client.on("connect_error", (e) => !client.joinedOnce && (setPhaseError({ code: "network_error", message: String(e) }), setPhase("error"))),
      client.on("refused", () => (setPhaseError({ code: "unauthenticated" }), setPhase("error"))),
      client.on("rejoined", (ack) => applyJoin(ack)),
      client.on("rejoin-failed", leftPhase),
      client.on("connection", ({ status, was }) => {
        setConn(status);
        if (status === "connected" && was !== "connecting") toast(t("room.reconnected"));
      }),
      client.on("media-reset", () => setRemote({})),
      // The server's offer lists everything it sends us: a stream it no longer sends (a share
      // whose end we missed while reconnecting, say) leaves its tile.
      client.on("tracks-map", (tracks) => {
        const keys = new Set(tracks.map((tr) => `${tr.participant_id}:${tr.source === "screen" && tr.kind === "video" ? "screen" : "camera"}`));
        setRemote((r) => (Object.keys(r).every((k) => keys.has(k)) ? r : Object.fromEntries(Object.entries(r).filter(([k]) => keys.has(k)))));
      }),
      client.on("session:ended", () => (setPhaseError({ code: "unauthenticated" }), setPhase("error"), client.close())),
      client.on("participant:joined", (d) => upsert(d.participant)),
      client.on("participant:updated", (d) => upsert(d.participant)),
      client.on("participant:left", (d) => {
        setParticipants((xs) => xs.filter((x) => x.participant_id !== d.participant_id));
        setRemote((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !k.startsWith(d.participant_id + ":"))));
      }),
      client.on("lobby:arrived", (g) => {
        setLobby((xs) => [...xs.filter((x) => x.guest_id !== g.guest_id), g]);
        chime();
        toast(t("room.lobby_arrived", { name: g.name }));
      }),
      client.on("lobby:left", (d) => setLobby((xs) => xs.filter((x) => x.guest_id !== d.guest_id))),
      client.on("lobby:admitted", () => enterRoom()),
      client.on("lobby:refused", () => (setPhase("refused"), client.close())),
      client.on("room:muted", (d) => {
        localRef.current && localRef.current.getAudioTracks().forEach((tr) => (tr.enabled = false));
        client.mediaState.audio = false; // the server did it: a media restart must not undo it
        setChoice((c) => ({ ...c, micOn: false }));
        toast(t("room.you_were_muted", { by: d.by }));
      }),
      client.on("room:unmute_requested", (d) => toast(t("room.unmute_requested", { by: d.by }))),
      client.on("room:removed", () => (setPhase("removed"), client.close())),
      client.on("room:ended", () => (setPhase("ended"), client.close())),
      client.on("room:replaced", () => (setPhase("left"), client.close())),
      client.on("chat:message", (m) => {
        setMessages((xs) => (xs.some((x) => x.id === m.id) ? xs : [...xs, { ...m, mine: m.sender.id === session.id }]));
        if (panelRef.current !== "chat") setUnread((n) => n + 1);
      }),
      client.on("track", ({ track, participant_id, source, kind }) => {
        if (!participant_id) return;
        // A participant's microphone plays with their camera tile; a screen has its own tile.
        const key = `${participant_id}:${source === "screen" && (kind || track.kind) === "video" ? "screen" : "camera"}`;
        // Someone starts sharing their screen: show it large, as for one's own share.
        if (key.endsWith(":screen")) setLayout("speaker");
        setRemote((r) => {
          const next = { ...r };
          // A reused m-line brings its receiver's track under another label: take it out of
          // the stream it fed before.
          for (const [k, s] of Object.entries(r)) {
            if (k !== key && s.getTracks().includes(track)) {
              const left = new MediaStream(s.getTracks().filter((x) => x !== track));
              if (left.getTracks().length) next[k] = left;
              else delete next[k];
            }
          }
          const s = r[key];
          if (s && s.getTracks().includes(track)) return next;
          next[key] = new MediaStream([...(s ? s.getTracks().filter((x) => x.kind !== track.kind) : []), track]);
          return next;
        });
      }),
      client.on("rtc:screen", (d) => {
        if (d && d.active === false && d.participant_id) {
          setRemote((r) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== `${d.participant_id}:screen`)));
        }
      }),
      client.on("rtc:speaker", (d) => setSpeaker(d.participant_id)),
      client.on("rtc:stats", (d) => {
        const q = {};
        for (const [pid, rep] of Object.entries(d.participants || {})) q[pid] = qualityOf(rep);
        setQuality(q);
      }),
      client.on("rtc-error", (e) => !client.rtcAvailable && setRtcNote(e)),
    ];
    client.connect();
    return () => {
      offs.forEach((off) => off());
      client.close();
    };
  }, [client]);

  // Media with the SFU once joined and the camera is open.
  useEffect(() => {
    if (phase !== "joined" || !local || client.mediaWanted) return;
    client.startMedia(local).catch((e) => !client.rtcAvailable && setRtcNote(e));
    client.setMediaState({ audio: !!choice.micOn, video: !!choice.camOn }).catch(() => {});
  }, [phase, local]);

  const toggle = (kind) => {
    if (!local) return;
    const key = kind === "audio" ? "micOn" : "camOn";
    const on = !choice[key];
    (kind === "audio" ? local.getAudioTracks() : local.getVideoTracks()).forEach((tr) => (tr.enabled = on));
    setChoice((c) => ({ ...c, [key]: on }));
    client.setMediaState({ [kind === "audio" ? "audio" : "video"]: on }).catch(() => {});
  };

  const changeDevice = async (kind, deviceId) => {
    try {
      const fresh = await openMedia(kind === "video" ? { cameraId: deviceId, audio: false } : { microphoneId: deviceId, video: false });
      const track = fresh.getTracks()[0];
      track.enabled = kind === "video" ? choice.camOn : choice.micOn;
      const s = new MediaStream([...local.getTracks().filter((x) => x.kind !== track.kind), track]);
      local.getTracks().filter((x) => x.kind === track.kind).forEach((x) => x.stop());
      setLocal(s);
      setChoice((c) => ({ ...c, [kind === "video" ? "cameraId" : "microphoneId"]: deviceId }));
      await client.replaceTrack(track.kind, track);
    } catch (e) {
      setMediaError(e);
    }
  };

  const toggleScreen = async () => {
    if (screen) {
      stopStream(screen);
      setScreen(null);
      await client.stopScreen();
      client.setMediaState({ screen: false }).catch(() => {});
      return;
    }
    try {
      const s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
      const track = s.getVideoTracks()[0];
      track.addEventListener("ended", () => {
        setScreen(null);
        client.stopScreen();
        client.setMediaState({ screen: false }).catch(() => {});
      });
      setScreen(s);
      setLayout("speaker");
      client.setMediaState({ screen: true }).catch(() => {});
      await client.startScreen(track, s);
    } catch (e) {
      if (e.name !== "NotAllowedError") setMediaError(e);
    }
  };

  const sendChat = (text, to, document) =>
    client
      .call("chat:send", { id: uuid4(), text, ...(to ? { to } : {}), ...(document ? { document } : {}) })
      .then((ack) => ack.message && setMessages((xs) => (xs.some((x) => x.id === ack.message.id) ? xs : [...xs, { ...ack.message, mine: true }])))
      .catch((e) => toast(e.code === "disconnected" ? t("room.chat_not_sent") : errorMessage(e)));

  const takeShot = async (video, label) => {
    if (!video) return;
    const blob = await captureFrame(video);
    // Named in Paris time, as the dossier shows it: capture-2026-11-23_09-41-05.png
    const f = Object.fromEntries(
      new Intl.DateTimeFormat("fr-FR", { timeZone: "Europe/Paris", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" })
        .formatToParts(new Date())
        .map((x) => [x.type, x.value]),
    );
    const stamp = `${f.year}-${f.month}-${f.day}_${f.hour}-${f.minute}-${f.second}`;
    setShot({ blob, label, filename: `capture-${stamp}.png` });
  };
  const pip = async (video) => {
    try {
      if (document.pictureInPictureElement) await document.exitPictureInPicture();
      else if (video && video.requestPictureInPicture) await video.requestPictureInPicture();
      else toast(t("room.pip_unsupported"));
    } catch (e) {
      toast(t("room.pip_unsupported"));
    }
  };
  const moderate = async (event, p) => {
    try {
      await client.call(event, { participant_id: p.participant_id });
      if (event === "room:ask_unmute") toast(t("room.ask_unmute_sent", { name: p.name }));
    } catch (e) {
      toast(errorMessage(e));
    }
  };
  const admit = (g) => client.call("room:admit", { guest_id: g.guest_id }).catch((e) => toast(errorMessage(e)));
  const refuse = (g) => client.call("room:refuse", { guest_id: g.guest_id }).catch((e) => toast(errorMessage(e)));
  const leave = async () => {
    await client.leave();
    stopStream(local);
    stopStream(screen);
    if (isGuest) setPhase("left");
    else navigate("/app/");
  };
  const openPanel = (name) => {
    setPanel((p) => (p === name ? null : name));
    if (name === "chat") setUnread(0);
  };

  // --- screens other than the call ---
  if (phase !== "joined") {
    const msg = {
      connecting: [t("room.connecting"), ""],
      lobby: [t("room.lobby_wait_title"), t("room.lobby_wait_body")],
      refused: [t("room.refused_title"), t("room.refused_body")],
      removed: [t("room.removed_title"), t("room.removed_body")],
      ended: [t("room.ended_title"), t("room.ended_body")],
      left: [t("room.left_title"), t("room.left_body")],
      error: [t("room.error_title"), phaseError ? (phaseError.code in { room_not_found: 1, room_closed: 1, room_full: 1, room_locked: 1 } ? t(`room.err_${phaseError.code}`) : errorMessage(phaseError)) : ""],
    }[phase];
    return html`<div class="join-page">
      <header class="topbar"><span class="brand"><span class="brand-mark" aria-hidden="true"></span>Consilium</span>
        <span class="spacer"></span>${!isGuest && html`<a class="btn btn-ghost btn-sm" href="/app/"><${Icon} name="home" />${t("nav.activity")}</a>`}</header>
      <main class="join-main" id="main"><div class="card join-card"><div class="card-body waiting" role="status">
        ${phase === "lobby" || phase === "connecting" ? html`<div class="pulse" aria-hidden="true"></div>` : html`<${Icon} name="door" />`}
        <h1>${msg[0]}</h1>${room && html`<p class="muted">${room.title}</p>`}<p>${msg[1]}</p>
        ${phase === "lobby" && local && html`<div class="preview lobby-preview"><${Video} stream=${local} muted=${true} label=${t("join.preview_label")} /></div>`}
      </div></div></main>
    </div>`;
  }

  // --- the call ---
  const meP = participants.find((p) => p.participant_id === me) || { participant_id: me, name: session.name, role, media: { audio: choice.micOn, video: choice.camOn } };
  const others = participants.filter((p) => p.participant_id !== me).sort((a, b) => a.name.localeCompare(b.name));
  const tiles = [
    { key: "me", p: { ...meP, media: { ...(meP.media || {}), audio: choice.micOn, video: choice.camOn } }, stream: local, local: true },
    ...(screen ? [{ key: "me:screen", p: meP, stream: screen, local: true, screen: true }] : []),
    ...others.map((p) => ({ key: p.participant_id, p, stream: remote[`${p.participant_id}:camera`] })),
    ...others.filter((p) => remote[`${p.participant_id}:screen`]).map((p) => ({ key: `${p.participant_id}:screen`, p, stream: remote[`${p.participant_id}:screen`], screen: true })),
  ];
  const featured = layout === "speaker" ? tiles.find((x) => x.screen && !x.local) || tiles.find((x) => x.screen) || tiles.find((x) => x.p.participant_id === speaker && !x.local) || tiles.find((x) => !x.local) || tiles[0] : null;
  const rest = featured ? tiles.filter((x) => x !== featured) : tiles;
  const renderTile = (x) => html`<${Tile} key=${x.key} p=${x.p} stream=${x.stream} local=${x.local} screen=${x.screen}
    speaking=${speaker && speaker === x.p.participant_id && !x.screen} quality=${quality[x.p.participant_id]} onShot=${takeShot} onPip=${pip} vis=${vis} />`;
  const gridRef = (el) => el && el.style.setProperty("--cols", String(Math.min(4, Math.ceil(Math.sqrt(rest.length))) || 1));

  return html`<div class=${`room layout-${layout}`} data-connection=${conn}>
    <header class="room-head">
      <span class="brand-mark" aria-hidden="true"></span>
      <span class="title">${room && room.title}</span>
      <span class="badge badge-live">${t("room.live")}</span>
      <${NetBars} quality=${quality[me]} />
      <span class="spacer grow"></span>
      ${isHost && lobby.length > 0 && html`<button type="button" class="btn btn-sm lobby-alert" onClick=${() => setPanel("people")}>
        <${Icon} name="bell" />${t("room.lobby_waiting", { count: lobby.length })}</button>`}
      <button type="button" class="btn btn-ghost btn-sm" aria-pressed=${layout === "speaker" ? "true" : "false"} onClick=${() => setLayout(layout === "grid" ? "speaker" : "grid")}>
        <${Icon} name=${layout === "grid" ? "speaker" : "grid"} /><span class="ctl-label">${layout === "grid" ? t("room.view_speaker") : t("room.view_grid")}</span></button>
    </header>
    <div class="room-body">
      <section class="stage" aria-label=${t("room.videos")}>
        <${ConnectionBanner} status=${conn} onRetry=${() => client.retry()} />
        ${mediaError && html`<${Alert} kind="warning">${t("join.media_error")}<//>`}
        ${rtcNote && html`<div class="alert alert-info small" role="status">${t("room.rtc_unavailable")}</div>`}
        ${featured && html`<div class="featured">${renderTile(featured)}</div>`}
        <div class="grid" ref=${gridRef}>${rest.map(renderTile)}</div>
      </section>
      ${panel && html`<aside class="side" aria-label=${t(panel === "chat" ? "room.chat" : "room.participants")}>
        <div class="side-head"><h2>${t(panel === "chat" ? "room.chat" : "room.participants")}</h2>
          <button type="button" class="btn btn-ghost btn-icon" aria-label=${t("common.close")} onClick=${() => setPanel(null)}><${Icon} name="x" /></button></div>
        ${panel === "chat"
          ? html`<${Chat} messages=${messages} me=${me} participants=${participants} dossierId=${room && room.dossier_id} to=${chatTo} setTo=${setChatTo} onSend=${(text, to) => sendChat(text, to)} />`
          : html`<${People} participants=${[meP, ...others]} me=${me} isHost=${isHost} lobby=${lobby} onAdmit=${admit} onRefuse=${refuse} onModerate=${moderate} />`}
      </aside>`}
    </div>
    <nav class="controls" aria-label=${t("room.controls")}>
      <button type="button" class=${`ctl ${choice.micOn ? "" : "off"}`} aria-pressed=${choice.micOn ? "false" : "true"} onClick=${() => toggle("audio")}>
        <${Icon} name=${choice.micOn ? "mic" : "micOff"} /><span class="ctl-label">${choice.micOn ? t("room.mic_off") : t("room.mic_on")}</span></button>
      <button type="button" class=${`ctl ${choice.camOn ? "" : "off"}`} aria-pressed=${choice.camOn ? "false" : "true"} onClick=${() => toggle("video")}>
        <${Icon} name=${choice.camOn ? "video" : "videoOff"} /><span class="ctl-label">${choice.camOn ? t("room.camera_off") : t("room.camera_on")}</span></button>
      <button type="button" class="ctl" onClick=${() => setDevicesOpen(true)}><${Icon} name="settings" /><span class="ctl-label">${t("room.devices")}</span></button>
      ${!isGuest && html`<button type="button" class="ctl" aria-pressed=${screen ? "true" : "false"} onClick=${toggleScreen}>
        <${Icon} name="screen" /><span class="ctl-label">${screen ? t("room.share_stop") : t("room.share")}</span></button>`}
      <button type="button" class="ctl" aria-pressed=${panel === "chat" ? "true" : "false"} onClick=${() => openPanel("chat")}>
        <${Icon} name="chat" /><span class="ctl-label">${t("room.chat")}${unread ? ` (${unread})` : ""}</span></button>
      <button type="button" class="ctl" aria-pressed=${panel === "people" ? "true" : "false"} onClick=${() => openPanel("people")}>
        <${Icon} name="users" /><span class="ctl-label">${t("room.participants")} (${participants.length || 1})</span></button>
      ${!isGuest && html`
        <button type="button" class="ctl" onClick=${() => setSendOpen(true)}><${Icon} name="file" /><span class="ctl-label">${t("room.send_doc")}</span></button>
        <button type="button" class="ctl" onClick=${() => setInviteOpen(true)}><${Icon} name="userPlus" /><span class="ctl-label">${t("room.invite")}</span></button>`}
      <button type="button" class="ctl" onClick=${() => { const v = document.querySelector(".tile:not(.local) video:not(.hidden)") || document.querySelector(".tile video"); takeShot(v, t("room.screenshot")); }}>
        <${Icon} name="camera" /><span class="ctl-label">${t("room.screenshot")}</span></button>
      <button type="button" class="ctl" onClick=${() => pip(document.querySelector(".featured video") || document.querySelector(".tile:not(.local) video") || document.querySelector(".tile video"))}>
        <${Icon} name="pip" /><span class="ctl-label">${t("room.pip")}</span></button>
      <button type="button" class="ctl leave" onClick=${leave}><${Icon} name="phone" /><span class="ctl-label">${t("room.leave")}</span></button>
    </nav>
    ${!isGuest && html`<${SendDocumentDialog} open=${sendOpen} onClose=${() => setSendOpen(false)} roomId=${roomId}
      dossierId=${room && room.dossier_id} recipients=${others} initialTo=${chatTo} />`}
    ${!isGuest && html`<${InviteDialog} open=${inviteOpen} onClose=${() => setInviteOpen(false)} roomId=${roomId} />`}
    <${ShotDialog} shot=${shot} onClose=${() => setShot(null)} roomId=${roomId} dossierId=${!isGuest && room && room.dossier_id} />
    <${Dialog} open=${devicesOpen} title=${t("room.devices")} onClose=${() => setDevicesOpen(false)}>
      <div class="field"><label for="room-cam">${t("room.camera")}</label>
        <select id="room-cam" class="input" value=${choice.cameraId || currentDevice("video")} onChange=${(e) => changeDevice("video", e.target.value)}>
          ${devices.cameras.map((d, i) => html`<option value=${d.deviceId}>${d.label || `${t("room.camera")} ${i + 1}`}</option>`)}</select></div>
      <div class="field"><label for="room-mic">${t("room.microphone")}</label>
        <select id="room-mic" class="input" value=${choice.microphoneId || currentDevice("audio")} onChange=${(e) => changeDevice("audio", e.target.value)}>
          ${devices.microphones.map((d, i) => html`<option value=${d.deviceId}>${d.label || `${t("room.microphone")} ${i + 1}`}</option>`)}</select></div>
    <//>
  </div>`;
}
