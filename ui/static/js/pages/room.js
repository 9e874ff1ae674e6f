// The room (seed 001, 3.2): video grid and active-speaker view, camera/microphone on/off and
// device choice, screen share with a large view, chat (room and direct), send a document,
// invite by e-mail/SMS, screenshot, picture-in-picture, participants with host moderation,
// lobby with admit/refuse and an arrival sound, network quality, leave (red phone).
import { api } from "../api.js";
import { Alert, Dialog, errorMessage, initials, toast, useTitle } from "../components.js";
import { currentLang, formatTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useMemo, useReducer, useRef, useState } from "../lib.js";
import { chime, listDevices, loadDeviceChoice, openMedia, stopStream } from "../media.js";
import { RoomClient, VisibilityTracker, uuid4 } from "../room-client.js";
import { inboundVideoByTile, receptionStep, worse } from "../room/reception.js";
import { callTiles, initialState, roomReducer } from "../room/state.js";
import { tileParticipant } from "../room/tiles.js";
import { navigate } from "../router.js";
import { RcpAgenda } from "./rcp.js";
import { SendDocumentDialog } from "./room-send.js";

function Video({ stream, muted, label, className }) {
  const ref = useRef(null);
  useEffect(() => {
    if (ref.current && ref.current.srcObject !== stream) ref.current.srcObject = stream || null;
  }, [stream]);
  return html`<video ref=${ref} class=${className} autoplay playsinline muted=${muted} aria-label=${label}></video>`;
}

/** The server's figures for a link, in words: « débit estimé 1,2 Mbit/s, pertes 0,5 %, aller-retour 40 ms,
 * image reçue 640×360 » (the layer of this participant's camera that we receive, simulcast only). */
function netFigures(net) {
  if (!net || net.estimate == null) return "";
  const lang = currentLang();
  const mbit = net.estimate >= 1e6;
  const rate = (net.estimate / (mbit ? 1e6 : 1e3)).toLocaleString(lang, { maximumFractionDigits: mbit ? 1 : 0 });
  const loss = ((net.loss || 0) * 100).toLocaleString(lang, { maximumFractionDigits: 1 });
  const rtt = net.rtt_ms == null ? "–" : String(Math.round(net.rtt_ms));
  let text = t("room.net_figures", { rate: `${rate} ${mbit ? "Mbit/s" : "kbit/s"}`, loss, rtt });
  const layer = net.layer;
  if (layer && !layer.paused) {
    const size = layer.width && layer.height ? `${layer.width}×${layer.height}` : t(`room.net_layer_${layer.rid}`);
    text = `${text}, ${t("room.net_layer", { layer: size })}`;
  }
  return net.paused > 0 ? `${text} ${t("room.net_paused", { count: net.paused })}` : text;
}

function NetBars({ quality, net }) {
  if (!quality) return null;
  const figures = netFigures(net);
  const label = figures ? `${t(`room.net_${quality}`)} (${figures})` : t(`room.net_${quality}`);
  const bars = html`<span class=${`net q-${quality}`} role="img" aria-label=${label} title=${label}><i></i><i></i><i></i></span>`;
  // Nothing decoded for seconds: said in words too, the bars alone are too discreet.
  return quality === "none" ? html`${bars}<span class="net-none" aria-hidden="true">${t("room.net_none_short")}</span>` : bars;
}

function captureFrame(video) {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth || 640;
  canvas.height = video.videoHeight || 480;
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

function Tile({ tileId, p, stream, local, screen, speaking, quality, net, onShot, onPip, vis }) {
  const ref = useRef(null);
  // A remote tile nobody sees gets its video paused on the server (see room/visibility.js),
  // under its key from room/tiles.js.
  useEffect(() => (vis && !local && ref.current ? vis.observe(tileId, ref.current) : undefined), [vis, tileId, local]);
  const hasVideo = stream && stream.getVideoTracks().some((tr) => tr.readyState === "live") && (screen || !p.media || p.media.video !== false);
  const name = screen ? t("room.screen_of", { name: p.name }) : local ? t("room.you", { name: p.name }) : p.name;
  return html`<div ref=${ref} class=${`tile ${local ? "local" : ""} ${screen ? "screen" : ""} ${speaking ? "speaking" : ""}`} data-participant=${p.participant_id} data-source=${screen ? "screen" : "camera"}>
    ${stream && html`<${Video} stream=${stream} muted=${local} label=${name} className=${hasVideo ? "" : "hidden"} />`}
    ${!hasVideo && html`<div class="placeholder"><span class="avatar">${initials(p.name)}</span></div>`}
    <div class="name">
      ${p.media && !screen && !p.media.audio && html`<${Icon} name="micOff" label=${t("room.muted")} />`}
      <span>${name}</span><${NetBars} quality=${quality} net=${net} />
    </div>
    ${hasVideo && html`<div class="tile-tools">
      <button type="button" class="btn btn-sm btn-icon" aria-label=${t("room.screenshot_of", { name })} onClick=${() => onShot(ref.current.querySelector("video"), name)}><${Icon} name="camera" /></button>
      <button type="button" class="btn btn-sm btn-icon" aria-label=${t("room.pip_of", { name })} onClick=${() => onPip(ref.current.querySelector("video"))}><${Icon} name="pip" /></button>
    </div>`}
  </div>`;
}

/** Colleagues connected right now but not in this room (presence:online, the list the
 * Messages page uses), asked every 30 s while the chat is open: a professional in a call
 * reaches them by a direct message (seed 001). Never for a guest. */
const ONLINE_EVERY_MS = 30000;
function useColleaguesOnline(live, enabled) {
  const [list, setList] = useState([]);
  useEffect(() => {
    if (!enabled) return undefined;
    let alive = true;
    const ask = () =>
      live
        .call("presence:online", {}, 8000)
        .then((ack) => alive && setList(ack.users || []))
        .catch(() => {});
    ask();
    const timer = setInterval(ask, ONLINE_EVERY_MS);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [live, enabled]);
  return list;
}

/** The bars of each remote participant follow what this page receives from them (frames
 * decoded, packets lost: room/reception.js), once a second, together with the server's
 * report: the worse of the two is shown. */
function useReception(media, remoteTracks, participants, hidden) {
  const [received, setReceived] = useState({}); // participant id → quality
  const states = useRef(new Map()); // tile key → reception state
  const inputs = useRef({});
  inputs.current = { remoteTracks, participants };
  useEffect(() => {
    let alive = true;
    const timer = setInterval(async () => {
      const report = await media.stats().catch(() => null);
      if (!alive || !report) return;
      const { remoteTracks: remote, participants: people } = inputs.current;
      const byTile = inboundVideoByTile(report, remote);
      const now = performance.now();
      const next = {};
      for (const [key, sample] of Object.entries(byTile)) {
        if (!key.endsWith(":camera")) continue;
        const pid = tileParticipant(key);
        const p = people.find((x) => x.participant_id === pid);
        const expectVideo = !!p && (!p.media || p.media.video !== false) && !hidden.current.has(key);
        const step = receptionStep(states.current.get(key) || null, { ...sample, expectVideo }, now);
        states.current.set(key, step.state);
        if (step.quality) next[pid] = step.quality;
      }
      for (const key of [...states.current.keys()]) if (!(key in byTile)) states.current.delete(key);
      setReceived((old) => (JSON.stringify(old) === JSON.stringify(next) ? old : next));
    }, 1000);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [media]);
  return received;
}

const COLLEAGUE = "user:"; // a chat recipient outside the room: "user:<user id>"

function Chat({ messages, me, participants, colleagues = [], onSend, dossierId, to, setTo }) {
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
          ${colleagues.length === 0
            ? others.map((p) => html`<option value=${p.participant_id}>${p.name}</option>`)
            : html`<optgroup label=${t("room.chat_in_room")}>${others.map((p) => html`<option value=${p.participant_id}>${p.name}</option>`)}</optgroup>
              <optgroup label=${t("room.chat_online")}>${colleagues.map((c) => html`<option value=${COLLEAGUE + c.user_id}>${c.name}</option>`)}</optgroup>`}
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

/** One MediaStream per remote tile, made again only when the tile's tracks change (the
 * reducer keeps a tile's track array as it was otherwise): a <video> keeps its stream. */
function useRemoteStreams(remote) {
  const cache = useRef(new Map()); // tile key → {tracks, stream}
  const streams = {};
  const next = new Map();
  for (const [key, tracks] of Object.entries(remote)) {
    const old = cache.current.get(key);
    const entry = old && old.tracks === tracks ? old : { tracks, stream: new MediaStream(tracks) };
    next.set(key, entry);
    streams[key] = entry.stream;
  }
  cache.current = next;
  return streams;
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

const PANEL_TITLES = { chat: "room.chat", people: "room.participants", rcp: "rcp.agenda" };

export function RoomPage({ roomId, session }) {
  const isGuest = session.kind === "guest";
  const client = useMemo(() => new RoomClient(roomId), [roomId]);
  const { live, media, pauses } = client;
  const hiddenTiles = useRef(new Set()); // tiles nobody sees: no picture expected there
  const vis = useMemo(
    () =>
      new VisibilityTracker(
        (key, visible) => {
          hiddenTiles.current[visible ? "delete" : "add"](key);
          pauses.setHidden(key, !visible);
        },
        { onResize: (key, width, height) => pauses.setSize(key, width, height) },
      ),
    [client],
  );
  useEffect(() => () => vis.destroy(), [vis]);
  const [state, dispatch] = useReducer(roomReducer, null, () =>
    initialState({ userId: session.id, choice: loadDeviceChoice() }),
  );
  // The event handlers below are subscribed once: they read the current state here.
  const current = useRef(state);
  current.current = state;
  const { phase, phaseError, room, me, role, participants, lobby, messages, conn, unread, panel, layout, local, screen, speaker, quality, network, devices, choice, mediaError, rtcNote, dialogs, shot, chatTo } = state;
  const remote = useRemoteStreams(state.remote);
  // An RCP's room: the agenda and the dossier shown now (room:join state, then rcp:current).
  const [rcp, setRcp] = useState(null);
  const currentDevice = (kind) => {
    const tr = local && (kind === "video" ? local.getVideoTracks()[0] : local.getAudioTracks()[0]);
    return (tr && tr.getSettings && tr.getSettings().deviceId) || "";
  };
  useTitle(room ? room.title : t("room.title"));

  const isHost = role === "host";
  const received = useReception(media, state.remote, participants, hiddenTiles);
  const online = useColleaguesOnline(live, !isGuest && phase === "joined" && panel === "chat");
  const colleagues = useMemo(() => {
    const here = new Set(participants.filter((p) => p.kind === "user").map((p) => p.subject_id));
    return online.filter((u) => !here.has(u.user_id) && u.user_id !== session.id);
  }, [online, participants]);

  // Local camera and microphone, opened once.
  useEffect(() => {
    let alive = true;
    openMedia({ cameraId: choice.cameraId, microphoneId: choice.microphoneId })
      .then(async (s) => {
        if (!alive) return stopStream(s);
        s.getVideoTracks().forEach((tr) => (tr.enabled = choice.camOn));
        s.getAudioTracks().forEach((tr) => (tr.enabled = choice.micOn));
        dispatch({ type: "local", stream: s });
        dispatch({ type: "devices", devices: await listDevices() });
      })
      .catch((e) => alive && dispatch({ type: "media-error", error: e }));
    return () => {
      alive = false;
    };
  }, []);
  useEffect(() => () => stopStream(current.current.local), []);

  // The room:join acknowledgement, first or after a reconnect: who is here, the lobby, and
  // the chat (what was said while we were away, each message once).
  const applyJoin = async (ack) => {
    dispatch({ type: "joined", ack });
    if (ack.status === "lobby") return;
    if (ack.rcp) {
      if (!current.current.rcpShown) dispatch({ type: "show-panel", panel: "rcp" });
      current.current.rcpShown = true;
      setRcp(ack.rcp);
    }
    const known = new Set(current.current.messages.map((m) => m.id));
    try {
      const page = ack.chat || (await live.call("chat:history", { limit: 50 }));
      const fresh = (await live.chatSince(page, known)).filter((m) => !known.has(m.id));
      dispatch({ type: "chat-caught-up", messages: fresh, countUnread: known.size > 0 });
    } catch {
      /* the chat stays as it was */
    }
  };
  const leftPhase = (error) => dispatch({ type: "left", error });
  const enterRoom = async () => {
    try {
      await applyJoin(await live.join());
    } catch (e) {
      leftPhase(e);
    }
  };
  const ends = (phase, error) => dispatch({ type: "phase", phase, error });

  // The live events, as actions; the side effects (sounds, toasts, closing) here.
  useEffect(() => {
    const offs = [
      // The first join; later ones are the client's (reconnects), reported as "rejoined".
      live.on("connected", () => !live.joinedOnce && enterRoom()),
      live.on("connect_error", (e) => !live.joinedOnce && ends("error", { code: "network_error", message: String(e) })),
      live.on("refused", () => ends("error", { code: "unauthenticated" })),
      live.on("rejoined", (ack) => applyJoin(ack)),
      live.on("rejoin-failed", leftPhase),
      live.on("connection", ({ status, was }) => {
        dispatch({ type: "connection", status });
        if (status === "connected" && was !== "connecting") toast(t("room.reconnected"));
      }),
      live.on("session:ended", () => (ends("error", { code: "unauthenticated" }), live.close())),
      live.on("participant:joined", (d) => dispatch({ type: "participant", participant: d.participant })),
      live.on("participant:updated", (d) => dispatch({ type: "participant", participant: d.participant })),
      live.on("participant:left", (d) => dispatch({ type: "participant-left", participant_id: d.participant_id })),
      live.on("lobby:arrived", (g) => {
        dispatch({ type: "lobby-arrived", guest: g });
        chime();
        toast(t("room.lobby_arrived", { name: g.name }));
      }),
      live.on("lobby:left", (d) => dispatch({ type: "lobby-left", guest_id: d.guest_id })),
      live.on("lobby:admitted", () => enterRoom()),
      live.on("lobby:refused", () => (ends("refused"), live.close())),
      live.on("room:muted", (d) => {
        const s = current.current.local;
        s && s.getAudioTracks().forEach((tr) => (tr.enabled = false));
        media.mutedByHost(); // the server did it: a media restart must not undo it
        dispatch({ type: "muted-by-host" });
        toast(t("room.you_were_muted", { by: d.by }));
      }),
      live.on("room:unmute_requested", (d) => toast(t("room.unmute_requested", { by: d.by }))),
      live.on("room:removed", () => (ends("removed"), live.close())),
      live.on("room:ended", () => (ends("ended"), live.close())),
      live.on("room:replaced", () => (ends("left"), live.close())),
      live.on("chat:message", (message) => dispatch({ type: "chat-message", message })),
      live.on("rcp:current", (c) => !isGuest && setRcp(c)),
      live.on("rtc:screen", (d) => {
        if (d && d.active === false && d.participant_id) dispatch({ type: "screen-ended", participant_id: d.participant_id });
      }),
      live.on("rtc:speaker", (d) => dispatch({ type: "speaker", participant_id: d.participant_id })),
      live.on("rtc:stats", (d) => dispatch({ type: "stats", participants: d.participants })),
      media.on("media-reset", () => dispatch({ type: "media-reset" })),
      media.on("tracks-map", (tracks) => dispatch({ type: "tracks-map", tracks })),
      media.on("track", (info) => dispatch({ type: "track", ...info })),
      media.on("rtc-error", (e) => !media.available && dispatch({ type: "rtc-note", error: e })),
    ];
    live.connect();
    return () => {
      offs.forEach((off) => off());
      live.close();
    };
  }, [client]);

  // Media with the SFU once joined and the camera is open.
  useEffect(() => {
    if (phase !== "joined" || !local || media.wanted) return;
    media.start(local).catch((e) => !media.available && dispatch({ type: "rtc-note", error: e }));
    media.setMediaState({ audio: !!choice.micOn, video: !!choice.camOn }).catch(() => {});
  }, [phase, local]);

  const toggle = (kind) => {
    if (!local) return;
    const key = kind === "audio" ? "micOn" : "camOn";
    const on = !choice[key];
    (kind === "audio" ? local.getAudioTracks() : local.getVideoTracks()).forEach((tr) => (tr.enabled = on));
    dispatch({ type: "toggle", kind, on });
    media.setMediaState({ [kind === "audio" ? "audio" : "video"]: on }).catch(() => {});
  };

  const changeDevice = async (kind, deviceId) => {
    try {
      const fresh = await openMedia(kind === "video" ? { cameraId: deviceId, audio: false } : { microphoneId: deviceId, video: false });
      const track = fresh.getTracks()[0];
      track.enabled = kind === "video" ? choice.camOn : choice.micOn;
      const s = new MediaStream([...local.getTracks().filter((x) => x.kind !== track.kind), track]);
      local.getTracks().filter((x) => x.kind === track.kind).forEach((x) => x.stop());
      dispatch({ type: "device-changed", kind, deviceId, stream: s });
      await media.replaceTrack(track.kind, track);
    } catch (e) {
      dispatch({ type: "media-error", error: e });
    }
  };

  const toggleScreen = async () => {
    if (screen) {
      stopStream(screen);
      dispatch({ type: "screen-stopped" });
      await media.stopScreen();
      media.setMediaState({ screen: false }).catch(() => {});
      return;
    }
    try {
      const s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
      const track = s.getVideoTracks()[0];
      track.addEventListener("ended", () => {
        dispatch({ type: "screen-stopped" });
        media.stopScreen();
        media.setMediaState({ screen: false }).catch(() => {});
      });
      dispatch({ type: "screen-started", stream: s });
      media.setMediaState({ screen: true }).catch(() => {});
      await media.startScreen(track, s);
    } catch (e) {
      if (e.name !== "NotAllowedError") dispatch({ type: "media-error", error: e });
    }
  };

  const sendChat = (text, to, document) =>
    live
      .call(
        ...(to && to.startsWith(COLLEAGUE)
          ? ["chat:direct", { id: uuid4(), text, to_user: to.slice(COLLEAGUE.length) }]
          : ["chat:send", { id: uuid4(), text, ...(to ? { to } : {}), ...(document ? { document } : {}) }]),
      )
      .then((ack) => ack.message && dispatch({ type: "chat-sent", message: ack.message }))
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
    dispatch({ type: "shot", shot: { blob, label, filename: `capture-${stamp}.png` } });
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
      await live.call(event, { participant_id: p.participant_id });
      if (event === "room:ask_unmute") toast(t("room.ask_unmute_sent", { name: p.name }));
    } catch (e) {
      toast(errorMessage(e));
    }
  };
  const admit = (g) => live.call("room:admit", { guest_id: g.guest_id }).catch((e) => toast(errorMessage(e)));
  const refuse = (g) => live.call("room:refuse", { guest_id: g.guest_id }).catch((e) => toast(errorMessage(e)));
  const leave = async () => {
    await live.leave();
    stopStream(local);
    stopStream(screen);
    if (isGuest) ends("left");
    else navigate("/app/");
  };
  const openPanel = (name) => dispatch({ type: "panel", panel: name });
  const setPanel = (name) => dispatch({ type: "show-panel", panel: name });
  const setChatTo = (to) => dispatch({ type: "chat-to", to });
  const setLayout = (next) => dispatch({ type: "layout", layout: next });
  const openDialog = (name, open) => () => dispatch({ type: "dialog", name, open });

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
  const { meP, others, featured, rest } = callTiles(state, { name: session.name, streamOf: (key) => remote[key] });
  const renderTile = (x) => html`<${Tile} key=${x.key} tileId=${x.key} p=${x.p} stream=${x.stream} local=${x.local} screen=${x.screen}
    speaking=${speaker && speaker === x.p.participant_id && !x.screen} quality=${x.local ? quality[x.p.participant_id] : worse(quality[x.p.participant_id], received[x.p.participant_id])} net=${network[x.p.participant_id]} onShot=${takeShot} onPip=${pip} vis=${vis} />`;
  const gridRef = (el) => el && el.style.setProperty("--cols", String(Math.min(4, Math.ceil(Math.sqrt(rest.length))) || 1));

  return html`<div class=${`room layout-${layout}`} data-connection=${conn}>
    <header class="room-head">
      <span class="brand-mark" aria-hidden="true"></span>
      <span class="title">${room && room.title}</span>
      <span class="badge badge-live">${t("room.live")}</span>
      <${NetBars} quality=${quality[me]} net=${network[me]} />
      <span class="spacer grow"></span>
      ${isHost && lobby.length > 0 && html`<button type="button" class="btn btn-sm lobby-alert" onClick=${() => setPanel("people")}>
        <${Icon} name="bell" />${t("room.lobby_waiting", { count: lobby.length })}</button>`}
      <button type="button" class="btn btn-ghost btn-sm" aria-pressed=${layout === "speaker" ? "true" : "false"} onClick=${() => setLayout(layout === "grid" ? "speaker" : "grid")}>
        <${Icon} name=${layout === "grid" ? "speaker" : "grid"} /><span class="ctl-label">${layout === "grid" ? t("room.view_speaker") : t("room.view_grid")}</span></button>
    </header>
    <div class="room-body">
      <section class="stage" aria-label=${t("room.videos")}>
        <${ConnectionBanner} status=${conn} onRetry=${() => live.retry()} />
        ${mediaError && html`<${Alert} kind="warning">${t("join.media_error")}<//>`}
        ${rtcNote && html`<div class="alert alert-info small" role="status">${t("room.rtc_unavailable")}</div>`}
        ${featured && html`<div class="featured">${renderTile(featured)}</div>`}
        <div class="grid" ref=${gridRef}>${rest.map(renderTile)}</div>
      </section>
      ${panel && html`<aside class="side" aria-label=${t(PANEL_TITLES[panel] || "room.participants")}>
        <div class="side-head"><h2>${t(PANEL_TITLES[panel] || "room.participants")}</h2>
          <button type="button" class="btn btn-ghost btn-icon" aria-label=${t("common.close")} onClick=${() => setPanel(null)}><${Icon} name="x" /></button></div>
        ${panel === "rcp" && rcp
          ? html`<div class="side-body rcp-side"><${RcpAgenda} meetingId=${rcp.meeting_id} current=${rcp} present=${[meP, ...others].map((x) => x.name)} compact=${true} /></div>`
          : panel === "chat"
          ? html`<${Chat} messages=${messages} me=${me} participants=${participants} colleagues=${colleagues} dossierId=${room && room.dossier_id} to=${chatTo} setTo=${setChatTo} onSend=${(text, to) => sendChat(text, to)} />`
          : html`<${People} participants=${[meP, ...others]} me=${me} isHost=${isHost} lobby=${lobby} onAdmit=${admit} onRefuse=${refuse} onModerate=${moderate} />`}
      </aside>`}
    </div>
    <nav class="controls" aria-label=${t("room.controls")}>
      <button type="button" class=${`ctl ${choice.micOn ? "" : "off"}`} aria-pressed=${choice.micOn ? "false" : "true"} onClick=${() => toggle("audio")}>
        <${Icon} name=${choice.micOn ? "mic" : "micOff"} /><span class="ctl-label">${choice.micOn ? t("room.mic_off") : t("room.mic_on")}</span></button>
      <button type="button" class=${`ctl ${choice.camOn ? "" : "off"}`} aria-pressed=${choice.camOn ? "false" : "true"} onClick=${() => toggle("video")}>
        <${Icon} name=${choice.camOn ? "video" : "videoOff"} /><span class="ctl-label">${choice.camOn ? t("room.camera_off") : t("room.camera_on")}</span></button>
      <button type="button" class="ctl" onClick=${openDialog("devices", true)}><${Icon} name="settings" /><span class="ctl-label">${t("room.devices")}</span></button>
      ${!isGuest && html`<button type="button" class="ctl" aria-pressed=${screen ? "true" : "false"} onClick=${toggleScreen}>
        <${Icon} name="screen" /><span class="ctl-label">${screen ? t("room.share_stop") : t("room.share")}</span></button>`}
      ${rcp && html`<button type="button" class="ctl" aria-pressed=${panel === "rcp" ? "true" : "false"} onClick=${() => openPanel("rcp")}>
        <${Icon} name="folder" /><span class="ctl-label">${t("rcp.agenda")}</span></button>`}
      <button type="button" class="ctl" aria-pressed=${panel === "chat" ? "true" : "false"} onClick=${() => openPanel("chat")}>
        <${Icon} name="chat" /><span class="ctl-label">${t("room.chat")}${unread ? ` (${unread})` : ""}</span></button>
      <button type="button" class="ctl" aria-pressed=${panel === "people" ? "true" : "false"} onClick=${() => openPanel("people")}>
        <${Icon} name="users" /><span class="ctl-label">${t("room.participants")} (${participants.length || 1})</span></button>
      ${!isGuest && html`
        <button type="button" class="ctl" onClick=${openDialog("send", true)}><${Icon} name="file" /><span class="ctl-label">${t("room.send_doc")}</span></button>
        <button type="button" class="ctl" onClick=${openDialog("invite", true)}><${Icon} name="userPlus" /><span class="ctl-label">${t("room.invite")}</span></button>`}
      <button type="button" class="ctl" onClick=${() => { const v = document.querySelector(".tile:not(.local) video:not(.hidden)") || document.querySelector(".tile video"); takeShot(v, t("room.screenshot")); }}>
        <${Icon} name="camera" /><span class="ctl-label">${t("room.screenshot")}</span></button>
      <button type="button" class="ctl" onClick=${() => pip(document.querySelector(".featured video") || document.querySelector(".tile:not(.local) video") || document.querySelector(".tile video"))}>
        <${Icon} name="pip" /><span class="ctl-label">${t("room.pip")}</span></button>
      <button type="button" class="ctl leave" onClick=${leave}><${Icon} name="phone" /><span class="ctl-label">${t("room.leave")}</span></button>
    </nav>
    ${!isGuest && html`<${SendDocumentDialog} open=${dialogs.send} onClose=${openDialog("send", false)} roomId=${roomId}
      dossierId=${room && room.dossier_id} recipients=${others} initialTo=${chatTo && !chatTo.startsWith(COLLEAGUE) ? chatTo : ""} />`}
    ${!isGuest && html`<${InviteDialog} open=${dialogs.invite} onClose=${openDialog("invite", false)} roomId=${roomId} />`}
    <${ShotDialog} shot=${shot} onClose=${() => dispatch({ type: "shot", shot: null })} roomId=${roomId} dossierId=${!isGuest && room && room.dossier_id} />
    <${Dialog} open=${dialogs.devices} title=${t("room.devices")} onClose=${openDialog("devices", false)}>
      <div class="field"><label for="room-cam">${t("room.camera")}</label>
        <select id="room-cam" class="input" value=${choice.cameraId || currentDevice("video")} onChange=${(e) => changeDevice("video", e.target.value)}>
          ${devices.cameras.map((d, i) => html`<option value=${d.deviceId}>${d.label || `${t("room.camera")} ${i + 1}`}</option>`)}</select></div>
      <div class="field"><label for="room-mic">${t("room.microphone")}</label>
        <select id="room-mic" class="input" value=${choice.microphoneId || currentDevice("audio")} onChange=${(e) => changeDevice("audio", e.target.value)}>
          ${devices.microphones.map((d, i) => html`<option value=${d.deviceId}>${d.label || `${t("room.microphone")} ${i + 1}`}</option>`)}</select></div>
    <//>
  </div>`;
}
