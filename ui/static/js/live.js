// The live connection of the pages outside a room: one Socket.IO connection per tab for a
// signed-in professional, opened by the application shell. It carries the direct messages
// (chat:direct, chat:history, chat:read; the server sends chat:message, chat:read,
// chat:unread, and live:resync after a cut in its fan-out) and who is connected
// (presence:online). The room page keeps its own connection (room-client.js,
// room/live-room.js); this one never joins a room.
import { io } from "../vendor/socket.io.mjs";
import { api } from "./api.js";
import { useEffect, useState } from "./lib.js";
import { LiveError } from "./room/common.js";

export { LiveError, uuid4 } from "./room/common.js";

const EVENTS = ["chat:message", "chat:read", "chat:unread", "rcp:current", "rcp:item_signed"];
const ONLINE_EVERY_MS = 30000;

let socket = null;
let status = "idle"; // idle | connecting | connected | disconnected
let unread = 0;
let unreadEpoch = 0; // bumped by every count received: an older request's answer is stale
let unreadAt = 0; // server time of the newest chat:unread count applied
let online = { ids: new Set(), known: false }; // known: presence answered at least once
let onlineTimer = null;
let onlineWatchers = 0;
const handlers = new Map(); // event → Set(fn)
const stores = { status: new Set(), unread: new Set(), online: new Set() };

function fire(name, data) {
  (handlers.get(name) || []).forEach((fn) => {
    try {
      fn(data);
    } catch (e) {
      console.error(name, e);
    }
  });
}

function publish(kind, value) {
  stores[kind].forEach((fn) => fn(value));
}

function setStatus(value) {
  status = value;
  publish("status", value);
}

function setUnread(value) {
  unread = Math.max(0, Number(value) || 0);
  publish("unread", unread);
}

/** Fetch the unread total (on connection: what arrived while we were away). */
export function refreshUnread() {
  const epoch = ++unreadEpoch;
  return api
    .get("/chat/unread")
    .then((u) => epoch === unreadEpoch && setUnread(u.total))
    .catch(() => {});
}

/** A count pushed by the server (a message arrived, I read somewhere): newer than any
 * request in flight; counts computed concurrently apply in the order they were taken. */
function onUnreadEvent(data) {
  if (!data) return;
  const at = Number(data.at) || 0;
  if (at && at < unreadAt) return;
  unreadAt = Math.max(unreadAt, at);
  unreadEpoch++;
  setUnread(data.total);
}

async function refreshOnline() {
  if (!socket || !socket.connected) return;
  try {
    const ack = await call("presence:online", {}, 8000);
    online = { ids: new Set((ack.users || []).map((u) => u.user_id)), known: true };
    publish("online", online);
  } catch {
    /* next round */
  }
}

function watchOnline(on) {
  onlineWatchers += on ? 1 : -1;
  clearInterval(onlineTimer);
  onlineTimer = null;
  if (onlineWatchers > 0) {
    refreshOnline();
    onlineTimer = setInterval(refreshOnline, ONLINE_EVERY_MS);
  }
}

/** Open the connection (idempotent). The session cookie authenticates it. */
export function startLive() {
  if (socket) return;
  // forceNew: never share a manager with the room page's own connection. WebSocket only:
  // with several workers on one port, long-polling requests could reach different workers
  // (docs/deployment.md), and the client never fell back to polling anyway.
  socket = io({ path: "/socket.io", transports: ["websocket"], withCredentials: true, forceNew: true });
  setStatus("connecting");
  for (const name of EVENTS) socket.on(name, (data) => fire(name, data));
  socket.on("chat:unread", onUnreadEvent);
  socket.on("connect", () => {
    setStatus("connected");
    refreshUnread();
    if (onlineWatchers > 0) refreshOnline();
    fire("connected");
  });
  // The server's fan-out was cut (Redis lost and back): messages sent meanwhile never
  // came over this connection. Catch up as after a reconnection (the pages reload from
  // the stored history and merge by message id).
  socket.on("live:resync", () => {
    refreshUnread();
    if (onlineWatchers > 0) refreshOnline();
    fire("connected");
  });
  socket.on("disconnect", () => setStatus("disconnected"));
  socket.on("connect_error", () => {
    // Refused by the server (signed out, session over): it will not retry; stop here.
    if (socket && !socket.active) stopLive();
    else setStatus("disconnected");
  });
  socket.on("session:ended", () => stopLive());
}

/** Close the connection (sign-out). */
export function stopLive() {
  if (socket) {
    socket.removeAllListeners();
    socket.disconnect();
  }
  socket = null;
  setStatus("idle");
  setUnread(0);
  unreadEpoch++;
  unreadAt = 0;
  online = { ids: new Set(), known: false };
  publish("online", online);
}

/** Emit with acknowledgement: resolves `{ok: true, …}`, rejects a LiveError. Sent as soon
 * as the connection is up (Socket.IO buffers while it connects). */
export function call(event, data = {}, timeout = 10000) {
  if (!socket) startLive();
  return new Promise((resolve, reject) => {
    socket.timeout(timeout).emit(event, data, (err, ack) => {
      if (err) return reject(new LiveError({ code: "timeout", message: `${event}: no answer` }));
      if (!ack || ack.ok === false) return reject(new LiveError(ack && ack.error));
      resolve(ack);
    });
  });
}

/** Subscribe to a server event (or "connected"); returns the unsubscribe function. */
export function onLive(name, fn) {
  if (!handlers.has(name)) handlers.set(name, new Set());
  handlers.get(name).add(fn);
  return () => handlers.get(name).delete(fn);
}

function useStore(kind, current) {
  const [value, setValue] = useState(current);
  useEffect(() => {
    stores[kind].add(setValue);
    setValue(kind === "status" ? status : kind === "unread" ? unread : online);
    return () => stores[kind].delete(setValue);
  }, []);
  return value;
}

/** Direct messages waiting for me outside rooms (the navigation badge), kept live. */
export function useUnread() {
  return useStore("unread", unread);
}

/** "connecting" | "connected" | "disconnected" | "idle". */
export function useLiveStatus() {
  return useStore("status", status);
}

/** Who is connected right now: `{ids: Set of user ids, known}` (presence:online, asked
 * every 30 s while a page watches; `known` is false until the first answer). */
export function useOnline() {
  const value = useStore("online", online);
  useEffect(() => {
    watchOnline(true);
    return () => watchOnline(false);
  }, []);
  return value;
}
