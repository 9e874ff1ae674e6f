// The room page's state and every change to it: a pure reducer for `useReducer` (no DOM, no
// side effects, no imports but tiles.js), so that Node's test runner checks it without a
// browser (ui/tests/). The page turns the live events into actions and does the side effects
// (sounds, toasts, the tracks' enabled flags, the server calls) itself.
//
// `remote` maps a tile key (tiles.js) to the remote tracks that tile plays, as an array; the
// page makes one MediaStream per array (a new array: a new stream), so an action leaves the
// arrays of the tiles it does not change as they were.
import { LOCAL, tileKey, tileParticipant, trackTileKey } from "./tiles.js";

/** Phases: connecting | lobby | joined | refused | removed | ended | left | error. */
export function initialState({ userId = null, choice = {} } = {}) {
  return {
    userId, // the signed-in user (session.id): which chat messages are mine
    phase: "connecting",
    phaseError: null,
    room: null,
    me: null, // my participant id
    role: null,
    participants: [],
    lobby: [],
    messages: [],
    unread: 0,
    conn: "connected", // connected | reconnecting | failed
    panel: null, // null | "chat" | "people"
    layout: "grid", // grid | speaker
    chatTo: "",
    local: null, // my camera and microphone (a MediaStream, kept as is)
    screen: null, // my screen share (a MediaStream)
    remote: {}, // tile key → [MediaStreamTrack]
    speaker: null,
    quality: {}, // participant id → good | fair | poor
    network: {}, // participant id → the server's figures for their link (networkOf)
    devices: { cameras: [], microphones: [] },
    choice: { camOn: true, micOn: true, ...choice }, // and cameraId, microphoneId
    mediaError: null,
    rtcNote: null,
    dialogs: { invite: false, send: false, devices: false },
    shot: null, // {blob, label, filename}
  };
}

/** Chat messages merged by id (a message is never shown twice), in the order they were sent. */
export function mergeMessages(xs, incoming) {
  const seen = new Set(xs.map((m) => m.id));
  const add = incoming.filter((m) => !seen.has(m.id) && (seen.add(m.id), true));
  if (!add.length) return xs;
  return [...xs, ...add].sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
}

const QUALITY_ORDER = { good: 0, fair: 1, poor: 2 };

/** The server's figures for one participant's link (rtc:stats `bandwidth`): the bandwidth it
 * estimates from the participant's congestion feedback (transport-cc, or REMB), the loss and
 * the round trip of what it sends them, and how many of their videos it had to pause because
 * the link could not carry them. Null when the server has no figure yet. */
export function networkOf(report) {
  const bw = report && report.bandwidth;
  if (!bw) return null;
  return { estimate: bw.estimate ?? null, loss: bw.loss ?? null, rtt_ms: bw.rtt_ms ?? null, paused: bw.paused_for_budget || 0 };
}

/** The simulcast layer of participant `pid`'s camera that this client receives, from this
 * client's own rtc:stats report (`mine`): { rid: "q" | "h" | "f", width, height, paused }, or
 * null when it is not received as layers (one stream, or not subscribed). */
export function layerOf(mine, pid) {
  const sub = ((mine && mine.subscribed) || []).find((s) => s.publisher_id === pid && s.kind === "video" && s.source === "camera" && s.layer);
  if (!sub) return null;
  return { rid: sub.layer, width: sub.layer_width ?? null, height: sub.layer_height ?? null, paused: !!sub.paused_for_budget };
}

/** Estimates (bit/s) under which a link is « faible » / « moyen » (a 360p camera needs ~500 kbit/s). */
const POOR_ESTIMATE = 300000;
const FAIR_ESTIMATE = 800000;

/** One participant's network quality from their rtc:stats report: the server's estimate of
 * their link, the loss and RTT it sees (from their receiver reports), videos paused for them. */
export function qualityOf(report) {
  if (!report) return null;
  const grade = (loss, rtt) => (loss > 0.08 || rtt > 400 ? "poor" : loss > 0.02 || rtt > 150 ? "fair" : "good");
  let worst = "good";
  const bump = (q) => {
    if (QUALITY_ORDER[q] > QUALITY_ORDER[worst]) worst = q;
  };
  const net = networkOf(report);
  if (net) {
    bump(grade(net.loss || 0, net.rtt_ms || 0));
    if (net.paused > 0) bump("poor");
    if (net.estimate != null) bump(net.estimate < POOR_ESTIMATE ? "poor" : net.estimate < FAIR_ESTIMATE ? "fair" : "good");
  }
  for (const s of report.subscribed || []) bump(grade(s.loss || 0, s.rtt_ms || 0));
  if (report.state && report.state !== "connected") worst = "poor";
  return worst;
}

/** How the page leaves a room whose join (or rejoin) was refused. */
export const LEFT_PHASES = { removed: "removed", room_closed: "ended" };

const upsert = (xs, p) => [...xs.filter((x) => x.participant_id !== p.participant_id), p];
const keepKeys = (remote, keep) => {
  const keys = Object.keys(remote);
  return keys.every(keep) ? remote : Object.fromEntries(keys.filter(keep).map((k) => [k, remote[k]]));
};
const withMine = (state, m) => ({ ...m, mine: m.sender.id === state.userId });

/** A remote track arrives for the tile `key`: it replaces the track of its kind there, and
 * leaves the tile it fed before (a reused m-line brings its receiver's track under another
 * label). */
function addTrack(remote, key, track) {
  const next = { ...remote };
  for (const [k, tracks] of Object.entries(remote)) {
    if (k !== key && tracks.includes(track)) {
      const left = tracks.filter((x) => x !== track);
      if (left.length) next[k] = left;
      else delete next[k];
    }
  }
  const tracks = remote[key];
  if (tracks && tracks.includes(track)) return next;
  next[key] = [...(tracks ? tracks.filter((x) => x.kind !== track.kind) : []), track];
  return next;
}

export function roomReducer(state, action) {
  switch (action.type) {
    // --- joining and leaving
    case "joined": {
      // The room:join acknowledgement, first or after a reconnect.
      const { ack } = action;
      if (ack.status === "lobby") return { ...state, room: ack.room, phase: "lobby" };
      return { ...state, room: ack.room, me: ack.participant_id, role: ack.role, participants: ack.participants || [], lobby: ack.lobby || [], phase: "joined" };
    }
    case "left": // a refused join or rejoin, with its error
      return { ...state, phaseError: action.error, phase: LEFT_PHASES[action.error.code] || "error" };
    case "phase": // the stay ends: refused | removed | ended | left | error
      return { ...state, phase: action.phase, ...(action.error !== undefined ? { phaseError: action.error } : {}) };
    case "connection":
      return { ...state, conn: action.status };

    // --- who is here
    case "participant":
      return { ...state, participants: upsert(state.participants, action.participant) };
    case "participant-left": {
      const pid = action.participant_id;
      return {
        ...state,
        participants: state.participants.filter((x) => x.participant_id !== pid),
        remote: keepKeys(state.remote, (k) => tileParticipant(k) !== pid),
      };
    }
    case "lobby-arrived":
      return { ...state, lobby: [...state.lobby.filter((x) => x.guest_id !== action.guest.guest_id), action.guest] };
    case "lobby-left":
      return { ...state, lobby: state.lobby.filter((x) => x.guest_id !== action.guest_id) };
    case "speaker":
      return { ...state, speaker: action.participant_id };
    case "stats": {
      const quality = {};
      const network = {};
      const mine = (action.participants || {})[state.me];
      for (const [pid, rep] of Object.entries(action.participants || {})) {
        quality[pid] = qualityOf(rep);
        const net = networkOf(rep);
        // on their tile: their link's figures, and the layer of their camera this client gets
        network[pid] = net && pid !== state.me ? { ...net, layer: layerOf(mine, pid) } : net;
      }
      return { ...state, quality, network };
    }

    // --- chat
    case "chat-message": // from the server: unread unless the chat is open
      return {
        ...state,
        messages: state.messages.some((x) => x.id === action.message.id) ? state.messages : [...state.messages, withMine(state, action.message)],
        unread: state.panel !== "chat" ? state.unread + 1 : state.unread,
      };
    case "chat-sent": // my message, acknowledged
      return state.messages.some((x) => x.id === action.message.id) ? state : { ...state, messages: [...state.messages, { ...action.message, mine: true }] };
    case "chat-caught-up": {
      // What was said while we were away (after a rejoin): merged; counted as unread when we
      // had a chat before and it is not open.
      const fresh = action.messages.map((m) => withMine(state, m));
      const count = action.countUnread && state.panel !== "chat" ? fresh.filter((m) => !m.mine).length : 0;
      return { ...state, messages: mergeMessages(state.messages, fresh), unread: state.unread + count };
    }
    case "chat-to":
      return { ...state, chatTo: action.to };

    // --- remote media
    case "media-reset":
      return { ...state, remote: {} };
    case "tracks-map": {
      // The server's offer lists everything it sends us: a stream it no longer sends (a share
      // whose end we missed while reconnecting, say) leaves its tile.
      const keys = new Set(action.tracks.map(trackTileKey));
      return { ...state, remote: keepKeys(state.remote, (k) => keys.has(k)) };
    }
    case "track": {
      if (!action.participant_id) return state;
      const { track } = action;
      // A participant's microphone plays with their camera tile; a screen has its own tile.
      const key = trackTileKey({ participant_id: action.participant_id, source: action.source, kind: action.kind || track.kind });
      const screenShown = key === tileKey(action.participant_id, "screen");
      // Someone starts sharing their screen: show it large, as for one's own share.
      return { ...state, remote: addTrack(state.remote, key, track), layout: screenShown ? "speaker" : state.layout };
    }
    case "screen-ended":
      return { ...state, remote: keepKeys(state.remote, (k) => k !== tileKey(action.participant_id, "screen")) };
    case "rtc-note":
      return { ...state, rtcNote: action.error };

    // --- my media
    case "local":
      return { ...state, local: action.stream };
    case "devices":
      return { ...state, devices: action.devices };
    case "media-error":
      return { ...state, mediaError: action.error };
    case "toggle": {
      const key = action.kind === "audio" ? "micOn" : "camOn";
      return { ...state, choice: { ...state.choice, [key]: action.on } };
    }
    case "muted-by-host":
      return { ...state, choice: { ...state.choice, micOn: false } };
    case "device-changed":
      return { ...state, local: action.stream, choice: { ...state.choice, [action.kind === "video" ? "cameraId" : "microphoneId"]: action.deviceId } };
    case "screen-started":
      return { ...state, screen: action.stream, layout: "speaker" };
    case "screen-stopped":
      return { ...state, screen: null };

    // --- what the page shows
    case "layout":
      return { ...state, layout: action.layout };
    case "panel": // a control button: opens the panel, or closes it if it is open
      return { ...state, panel: state.panel === action.panel ? null : action.panel, unread: action.panel === "chat" ? 0 : state.unread };
    case "show-panel": // the lobby alert (people) and the close button (null)
      return { ...state, panel: action.panel };
    case "dialog":
      return { ...state, dialogs: { ...state.dialogs, [action.name]: action.open } };
    case "shot":
      return { ...state, shot: action.shot };
    default:
      throw new Error(`room: unknown action ${action.type}`);
  }
}

/** The tiles of the call, in order: my camera, my screen share, the others' cameras (by
 * name), the others' screen shares; each {key, p, stream, local?, screen?} with its key from
 * tiles.js. `streamOf(key)` gives a remote tile's stream. In the speaker view, `featured` is
 * a remote screen share, else mine, else the active speaker, else another participant. */
export function callTiles(state, { name, streamOf = (key) => state.remote[key] }) {
  const { me, role, choice, participants, screen, layout, speaker } = state;
  const meP = participants.find((p) => p.participant_id === me) || { participant_id: me, name, role, media: { audio: choice.micOn, video: choice.camOn } };
  const others = participants.filter((p) => p.participant_id !== me).sort((a, b) => a.name.localeCompare(b.name));
  const tiles = [
    { key: tileKey(LOCAL, "camera"), p: { ...meP, media: { ...(meP.media || {}), audio: choice.micOn, video: choice.camOn } }, stream: state.local, local: true },
    ...(screen ? [{ key: tileKey(LOCAL, "screen"), p: meP, stream: screen, local: true, screen: true }] : []),
    ...others.map((p) => ({ key: tileKey(p.participant_id, "camera"), p, stream: streamOf(tileKey(p.participant_id, "camera")) })),
    ...others
      .filter((p) => state.remote[tileKey(p.participant_id, "screen")])
      .map((p) => ({ key: tileKey(p.participant_id, "screen"), p, stream: streamOf(tileKey(p.participant_id, "screen")), screen: true })),
  ];
  const featured =
    layout === "speaker"
      ? tiles.find((x) => x.screen && !x.local) || tiles.find((x) => x.screen) || tiles.find((x) => x.p.participant_id === speaker && !x.local) || tiles.find((x) => !x.local) || tiles[0]
      : null;
  const rest = featured ? tiles.filter((x) => x !== featured) : tiles;
  return { meP, others, tiles, featured, rest };
}
