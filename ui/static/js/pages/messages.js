// "Messagerie": direct conversations between professionals outside rooms, as a hospital's
// instant messaging. Left, my conversations (last message, time, unread count, who is
// connected) and the search for a colleague; right, the conversation (older messages on
// demand, new ones live, sent with a client id so that a retry never duplicates, "Lu" from
// the colleague's read marker). On a phone, one column at a time with a back button.
import { api } from "../api.js";
import { Alert, errorMessage, initials, useTitle } from "../components.js";
import { formatDate, formatDateTime, formatTime, t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useCallback, useEffect, useMemo, useRef, useState } from "../lib.js";
import { call, onLive, useLiveStatus, useOnline, uuid4 } from "../live.js";
import { Link, navigate } from "../router.js";

const PAGE = 30;
const MAX_TEXT = 4000;
const WIDE = "(min-width: 761px)";

// --- helpers ---------------------------------------------------------------------------

/** A server time as microseconds since 1970 (Date keeps milliseconds only, and messages
 * sent within the same millisecond must keep the server's order). */
function timeKey(iso) {
  const ms = Date.parse(iso);
  const frac = /T[\d:]+\.(\d+)/.exec(iso || "");
  const micro = frac ? Number(frac[1].padEnd(6, "0").slice(3, 6)) : 0;
  return ms * 1000 + micro;
}

/** History order: (created_at, id); messages not confirmed yet go last, in sending order. */
function order(a, b) {
  const pa = a.status === "sent" ? 0 : 1;
  const pb = b.status === "sent" ? 0 : 1;
  if (pa !== pb) return pa - pb;
  if (pa === 1) return a.seq - b.seq;
  const ta = timeKey(a.created_at);
  const tb = timeKey(b.created_at);
  if (ta !== tb) return ta - tb;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** m comes at or before the marker {id, at} in the history's order. */
function readBy(m, marker) {
  if (!marker || m.status !== "sent") return false;
  const tm = timeKey(m.created_at);
  const tk = timeKey(marker.at);
  return tm < tk || (tm === tk && m.id <= marker.id);
}

function dayLabel(iso) {
  const d = formatDate(iso);
  if (d === formatDate(new Date())) return t("messages.today");
  if (d === formatDate(new Date(Date.now() - 86400000))) return t("messages.yesterday");
  return d;
}

/** In the list: the time today, "Hier", else the date (Europe/Paris). */
function listTime(iso) {
  const d = formatDate(iso);
  if (d === formatDate(new Date())) return formatTime(iso);
  if (d === formatDate(new Date(Date.now() - 86400000))) return t("messages.yesterday");
  return d;
}

/** Specialty, else "Secrétariat médical" or the profession. */
function peerRole(peer) {
  return peer.specialty || (peer.role === "secretary" ? t("messages.role_secretary") : peer.profession);
}

function peerLine(peer) {
  return [peerRole(peer), peer.establishment].filter(Boolean).join(" · ");
}

function otherSide(m, me) {
  return m.sender && m.sender.id === me ? m.to && m.to.id : m.sender && m.sender.id;
}

function BackIcon() {
  return html`<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M15 5l-7 7 7 7" /></svg>`;
}

function Avatar({ name, online, size = "" }) {
  return html`<span class=${`msg-avatar ${size}`} aria-hidden="true">
    <span class="avatar">${initials(name)}</span>
    ${online !== undefined && html`<span class=${`presence ${online ? "on" : ""}`}></span>`}
  </span>`;
}

function useDebounced(value, ms) {
  const [v, setV] = useState(value);
  useEffect(() => {
    const id = setTimeout(() => setV(value), ms);
    return () => clearTimeout(id);
  }, [value, ms]);
  return v;
}

// --- left column -----------------------------------------------------------------------

function ConversationList({ items, selected, isOnline }) {
  return html`<ul class="msg-convs">
    ${items.map((c) => {
      const on = isOnline(c.peer);
      const here = c.peer.id === selected;
      const unread = c.unread || 0;
      return html`<li key=${c.peer.id}>
        <${Link} href=${`/app/messages/${c.peer.id}`} class=${`msg-conv ${here ? "selected" : ""} ${unread ? "has-unread" : ""}`}
          aria-current=${here ? "page" : undefined}>
          <${Avatar} name=${c.peer.display_name} online=${on} />
          <span class="msg-conv-main">
            <span class="msg-conv-top">
              <span class="msg-conv-name">${c.peer.display_name}</span>
              <time class="msg-conv-time" datetime=${c.last_message.created_at} title=${formatDateTime(c.last_message.created_at)}>${listTime(c.last_message.created_at)}</time>
            </span>
            <span class="msg-conv-bottom">
              <span class="msg-conv-excerpt">${c.last_message.mine && html`<span class="msg-you">${t("messages.you_prefix")}</span>`}${c.last_message.excerpt}</span>
              ${unread > 0 && html`<span class="msg-unread"><span aria-hidden="true">${unread > 99 ? "99+" : unread}</span><span class="visually-hidden">${t(unread === 1 ? "messages.unread_one" : "messages.unread_many", { count: unread })}</span></span>`}
            </span>
            <span class="visually-hidden">${on ? t("messages.online") : ""}</span>
          </span>
        <//>
      </li>`;
    })}
  </ul>`;
}

function SearchResults({ q, results, error, isOnline, onPick }) {
  if (error) return html`<div class="msg-pad"><${Alert}>${error}<//></div>`;
  if (results === null) return html`<p class="msg-pad muted small" role="status">${t("common.loading")}</p>`;
  return html`<div>
    <h3 class="msg-section-title">${t("messages.search_results")}</h3>
    <p class="visually-hidden" role="status">${t("messages.search_count", { count: results.length })}</p>
    ${!results.length
      ? html`<p class="msg-pad muted small">${t("messages.search_none", { q })}</p>`
      : html`<ul class="msg-convs">
          ${results.map((p) => html`<li key=${p.id}>
            <button type="button" class="msg-conv" onClick=${() => onPick(p)}>
              <${Avatar} name=${p.display_name} online=${isOnline(p)} />
              <span class="msg-conv-main">
                <span class="msg-conv-name">${p.display_name}</span>
                <span class="msg-conv-excerpt">${peerRole(p)}</span>
                ${p.establishment && html`<span class="msg-conv-place">${p.establishment}</span>`}
              </span>
              <span class="msg-write"><${Icon} name="chat" /><span class="visually-hidden">${t("messages.write_to", { name: p.display_name })}</span></span>
            </button>
          </li>`)}
        </ul>`}
  </div>`;
}

// --- the conversation --------------------------------------------------------------------

let pendingSeq = 0;

function Thread({ peerId, session, isOnline, onBack, onActivity, onRead }) {
  const me = session.id;
  const status = useLiveStatus();
  const [detail, setDetail] = useState(null);
  const [detailError, setDetailError] = useState(null);
  const [msgs, setMsgs] = useState([]);
  const [loaded, setLoaded] = useState(false);
  const [loadError, setLoadError] = useState(null);
  const [hasMore, setHasMore] = useState(false);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [peerRead, setPeerRead] = useState(null); // {id, at: the read message's time, read_at}
  const [text, setText] = useState("");
  const [sendError, setSendError] = useState(null);
  const scrollRef = useRef(null);
  const inputRef = useRef(null);
  const stick = useRef(true);
  const restore = useRef(null);
  const lastRead = useRef(null);
  const msgsRef = useRef(msgs);
  msgsRef.current = msgs;

  const merge = useCallback((list) => {
    setMsgs((cur) => {
      const byId = new Map(cur.map((m) => [m.id, m]));
      for (const m of list) byId.set(m.id, { ...m, status: "sent" }); // the server's copy wins
      return [...byId.values()].sort(order);
    });
  }, []);

  const newerRead = (marker) =>
    setPeerRead((cur) => (!cur || readBy({ ...cur, created_at: cur.at, status: "sent" }, marker) ? marker : cur));

  useEffect(() => {
    let alive = true;
    let first = true;
    api
      .get(`/chat/conversations/${peerId}`)
      .then((d) => {
        if (!alive) return;
        setDetail(d);
        if (d.peer_read) newerRead({ id: d.peer_read.message_id, at: d.peer_read.message_created_at, read_at: d.peer_read.read_at });
        if (d.my_read && !lastRead.current) lastRead.current = d.my_read.message_id;
      })
      .catch((e) => alive && setDetailError(e));
    const loadLatest = () =>
      call("chat:history", { with_user: peerId, limit: PAGE })
        .then((h) => {
          if (!alive) return;
          merge(h.messages || []);
          if (first) setHasMore(!!h.has_more);
          first = false;
          setLoadError(null);
          setLoaded(true);
        })
        .catch((e) => alive && (setLoadError(errorMessage(e)), setLoaded(true)));
    loadLatest();
    const offs = [
      onLive("chat:message", (m) => {
        if (m.room_id || otherSide(m, me) !== peerId) return;
        merge([m]);
      }),
      onLive("chat:read", (d) => {
        if (!d.reader || d.reader.id !== peerId) return;
        const found = msgsRef.current.find((x) => x.id === d.message_id);
        if (found) newerRead({ id: found.id, at: found.created_at, read_at: d.read_at });
      }),
      onLive("connected", loadLatest), // after a reconnection or live:resync: what arrived meanwhile
    ];
    if (window.matchMedia(WIDE).matches && inputRef.current) inputRef.current.focus();
    return () => {
      alive = false;
      offs.forEach((off) => off());
    };
  }, [peerId]);

  // Keep the newest message in view (unless the reader scrolled up), or the reading position
  // when older messages were added above.
  useEffect(() => {
    const el = scrollRef.current;
    if (!el) return;
    if (restore.current) {
      el.scrollTop = el.scrollHeight - restore.current.height + restore.current.top;
      restore.current = null;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [msgs, loaded]);

  // "Lu": tell the server how far I have read while the conversation is on screen.
  useEffect(() => {
    const mark = () => {
      if (document.visibilityState !== "visible") return;
      const list = msgsRef.current;
      let last = null;
      for (let i = list.length - 1; i >= 0; i--) {
        if (list[i].status === "sent" && list[i].sender && list[i].sender.id === peerId) {
          last = list[i];
          break;
        }
      }
      if (!last || lastRead.current === last.id) return;
      lastRead.current = last.id;
      call("chat:read", { message_id: last.id, with_user: peerId })
        .then(() => onRead(peerId))
        .catch(() => {
          lastRead.current = null;
        });
    };
    mark();
    document.addEventListener("visibilitychange", mark);
    return () => document.removeEventListener("visibilitychange", mark);
  }, [msgs, peerId]);

  const older = async () => {
    const oldest = msgs.find((m) => m.status === "sent");
    if (!oldest || loadingOlder) return;
    setLoadingOlder(true);
    try {
      const h = await call("chat:history", { with_user: peerId, before: oldest.id, limit: PAGE });
      const el = scrollRef.current;
      if (el) restore.current = { height: el.scrollHeight, top: el.scrollTop };
      merge(h.messages || []);
      setHasMore(!!h.has_more);
    } catch (e) {
      setLoadError(errorMessage(e));
    } finally {
      setLoadingOlder(false);
    }
  };

  const send = (body, id = uuid4()) => {
    const pending = {
      id,
      seq: ++pendingSeq,
      text: body,
      created_at: new Date().toISOString(),
      room_id: null,
      sender: { id: me, kind: "user", name: session.name },
      to: { id: peerId },
      status: "sending",
    };
    setMsgs((cur) => [...cur.filter((m) => m.id !== id), pending].sort(order));
    stick.current = true;
    setSendError(null);
    // The id travels with every attempt: a retry after a lost answer is stored once.
    call("chat:direct", { id, text: body, to_user: peerId })
      .then((ack) => {
        merge([ack.message]);
        onActivity(ack.message);
      })
      .catch((e) => {
        setMsgs((cur) => cur.map((m) => (m.id === id && m.status !== "sent" ? { ...m, status: "failed" } : m)));
        setSendError(errorMessage(e));
      });
  };

  const submit = (e) => {
    e.preventDefault();
    const body = text.trim();
    if (!body || body.length > MAX_TEXT) return;
    send(body);
    setText("");
    if (inputRef.current) inputRef.current.style.removeProperty("height");
  };

  const onKeyDown = (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) submit(e);
  };

  const onInput = (e) => {
    setText(e.target.value);
    const el = e.target; // grows with the text, up to a few lines (CSSOM: the CSP allows it)
    el.style.setProperty("height", "auto");
    el.style.setProperty("height", `${Math.min(el.scrollHeight + 2, 180)}px`);
  };

  const onScroll = () => {
    const el = scrollRef.current;
    if (el) stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  };

  const peer = detail && detail.peer;
  const name = peer ? peer.display_name : "";
  const on = peer ? isOnline(peer) : false;
  const canWrite = !!(detail && detail.can_write);
  const lastMine = useMemo(() => {
    for (let i = msgs.length - 1; i >= 0; i--) if (msgs[i].sender && msgs[i].sender.id === me) return msgs[i].id;
    return null;
  }, [msgs]);

  if (detailError) {
    return html`<div class="msg-thread-pane">
      <div class="msg-head"><button type="button" class="btn btn-ghost msg-back" onClick=${onBack}><${BackIcon} />${t("messages.back")}</button></div>
      <div class="msg-pad"><${Alert}>${detailError.status === 404 ? t("messages.not_found") : errorMessage(detailError)}<//></div>
    </div>`;
  }

  let day = null;
  let prevSender = null;
  return html`<div class="msg-thread-pane">
    <header class="msg-head">
      <button type="button" class="btn btn-ghost msg-back" onClick=${onBack}><${BackIcon} /><span>${t("messages.back")}</span></button>
      ${peer && html`<${Avatar} name=${name} online=${on} size="lg" />`}
      <div class="msg-head-text">
        <h2 id="msg-thread-title">${name || t("common.loading")}</h2>
        ${peer && html`<p class="msg-head-sub">
          <span class=${`msg-status ${on ? "on" : ""}`}>${on ? t("messages.online") : t("messages.offline")}</span>
          ${peerLine(peer) && html`<span class="msg-head-sep" aria-hidden="true">·</span><span>${peerLine(peer)}</span>`}
        </p>`}
      </div>
    </header>
    ${status === "disconnected" && html`<div class="msg-conn" role="status"><${Icon} name="wifi" />${t("messages.reconnecting")}</div>`}
    <div class="msg-scroll" ref=${scrollRef} onScroll=${onScroll} role="log" aria-live="polite" aria-relevant="additions" aria-labelledby="msg-thread-title">
      ${hasMore && html`<div class="msg-older"><button type="button" class="btn btn-sm" onClick=${older} disabled=${loadingOlder}>
        ${loadingOlder ? t("common.loading") : t("messages.older")}</button></div>`}
      ${loadError && html`<div class="msg-pad"><${Alert}>${loadError}<//></div>`}
      ${loaded && !msgs.length && !loadError && peer && html`<div class="msg-empty-thread">
        <${Avatar} name=${name} size="xl" />
        <p><strong>${t("messages.empty_thread", { name })}</strong></p>
        <p class="small muted">${t("messages.privacy")}</p>
      </div>`}
      <ol class="msg-list">
        ${msgs.map((m) => {
          const mine = m.sender && m.sender.id === me;
          const d = m.status === "sent" ? dayLabel(m.created_at) : day || dayLabel(m.created_at);
          const sep = d !== day;
          day = d;
          const cont = !sep && prevSender === (m.sender && m.sender.id);
          prevSender = m.sender && m.sender.id;
          const read = mine && readBy(m, peerRead);
          return html`${sep && html`<li class="msg-day" key=${`day-${d}`}><span>${d}</span></li>`}
          <li key=${m.id} class=${`msg-item ${mine ? "mine" : "theirs"} ${cont ? "cont" : ""} ${m.status !== "sent" ? m.status : ""}`} data-id=${m.id}>
            <span class="visually-hidden">${mine ? t("messages.you") : m.sender.name}, ${formatTime(m.created_at)} :</span>
            <div class="msg-bubble"><span class="msg-text">${m.text}</span>${(m.document || m.attachment) && html`<span class="msg-file"><${Icon} name="file" />${(m.document || m.attachment).name}</span>`}</div>
            <div class="msg-meta">
              <time datetime=${m.created_at} title=${formatDateTime(m.created_at)}>${formatTime(m.created_at)}</time>
              ${mine && m.id === lastMine && html`<span class=${`msg-state ${read ? "read" : ""}`}>
                ${m.status === "sending" ? t("messages.sending")
                  : m.status === "failed" ? html`${t("messages.failed")} <button type="button" class="btn-link" onClick=${() => send(m.text, m.id)}>${t("messages.retry")}</button>`
                  : read ? html`<${Icon} name="check" />${t("messages.read")}` : t("messages.sent")}
              </span>`}
              ${mine && m.status === "failed" && m.id !== lastMine && html`<span class="msg-state">${t("messages.failed")}
                <button type="button" class="btn-link" onClick=${() => send(m.text, m.id)}>${t("messages.retry")}</button></span>`}
            </div>
          </li>`;
        })}
      </ol>
    </div>
    ${detail && !canWrite && html`<div class="msg-pad"><${Alert} kind="info">${t("messages.closed_account")}<//></div>`}
    ${sendError && html`<div class="msg-send-error"><${Alert}>${sendError}<//></div>`}
    <form class="msg-compose" onSubmit=${submit}>
      <label for="msg-text" class="visually-hidden">${t("messages.compose_label")}</label>
      <textarea id="msg-text" ref=${inputRef} class="input" rows="1" value=${text} maxlength=${MAX_TEXT}
        placeholder=${name ? t("messages.compose_placeholder", { name }) : ""} disabled=${!canWrite}
        aria-describedby="msg-compose-hint" onInput=${onInput} onKeyDown=${onKeyDown}></textarea>
      <button type="submit" class="btn btn-primary msg-send" disabled=${!canWrite || !text.trim()}>
        <${Icon} name="send" /><span class="label">${t("messages.send")}</span></button>
      <p id="msg-compose-hint" class="msg-hint">${text.length > MAX_TEXT - 500 ? t("messages.length", { count: text.length }) : t("messages.compose_hint")}</p>
    </form>
  </div>`;
}

function NoThread() {
  return html`<div class="msg-nothread">
    <span class="msg-nothread-icon" aria-hidden="true"><${Icon} name="chat" /></span>
    <h2>${t("messages.pick")}</h2>
    <p class="muted">${t("messages.pick_lead")}</p>
    <p class="small muted msg-privacy"><${Icon} name="shield" />${t("messages.privacy")}</p>
  </div>`;
}

// --- the page ----------------------------------------------------------------------------

export function MessagesPage({ id, session }) {
  useTitle(t("messages.title"));
  const me = session.id;
  const presence = useOnline();
  const [convs, setConvs] = useState(null);
  const [listError, setListError] = useState(null);
  const [query, setQuery] = useState("");
  const [results, setResults] = useState(null);
  const [searchError, setSearchError] = useState(null);
  const q = useDebounced(query.trim(), 250);
  const selected = useRef(id);
  selected.current = id;
  const reloadTimer = useRef(null);

  const load = useCallback(
    () =>
      api
        .get("/chat/conversations")
        .then((data) => (setConvs(data), setListError(null)))
        .catch((e) => (setConvs((c) => c || []), setListError(errorMessage(e)))),
    [],
  );
  const reloadSoon = () => {
    clearTimeout(reloadTimer.current);
    reloadTimer.current = setTimeout(load, 300);
  };

  /** A message sent or received: its conversation moves to the top at once. */
  const bump = (m) => {
    const peerId = otherSide(m, me);
    const fromPeer = m.sender.id !== me;
    const reading = fromPeer && peerId === selected.current && document.visibilityState === "visible";
    setConvs((list) => {
      if (!list) return list;
      const c = list.find((x) => x.peer.id === peerId);
      if (!c) return list; // a new conversation: the reload brings it with the colleague's details
      const last = { id: m.id, excerpt: m.text.slice(0, 160), created_at: m.created_at, mine: !fromPeer, has_file: !!(m.document || m.attachment) };
      const unread = fromPeer && !reading ? (c.unread || 0) + 1 : c.unread;
      return [{ ...c, last_message: last, unread }, ...list.filter((x) => x !== c)];
    });
  };

  useEffect(() => {
    load();
    const offs = [
      onLive("chat:message", (m) => {
        if (m.room_id) return;
        bump(m);
        reloadSoon();
      }),
      onLive("chat:unread", reloadSoon),
      onLive("connected", reloadSoon),
    ];
    return () => {
      clearTimeout(reloadTimer.current);
      offs.forEach((off) => off());
    };
  }, []);

  useEffect(() => {
    if (q.length < 2) {
      setResults(null);
      setSearchError(null);
      return undefined;
    }
    const ctl = new AbortController();
    setResults(null);
    api
      .get("/chat/colleagues", { query: { q }, signal: ctl.signal })
      .then((r) => (setResults(r), setSearchError(null)))
      .catch((e) => e.name !== "AbortError" && setSearchError(errorMessage(e)));
    return () => ctl.abort();
  }, [q]);

  const isOnline = (peer) => (presence.known ? peer.active !== false && presence.ids.has(peer.id) : !!peer.online);
  const onRead = (peerId) => setConvs((list) => list && list.map((c) => (c.peer.id === peerId ? { ...c, unread: 0 } : c)));
  const onActivity = (m) => {
    bump(m);
    reloadSoon();
  };
  const pick = (p) => {
    setQuery("");
    navigate(`/app/messages/${p.id}`);
  };
  const searching = query.trim().length >= 2;

  return html`<div class=${`msg-page ${id ? "has-thread" : ""}`}>
    <div class="page-head msg-page-head">
      <div><h1>${t("messages.title")}</h1><p>${t("messages.lead")}</p></div>
    </div>
    <div class="messenger card">
      <section class="msg-side" aria-labelledby="msg-side-title">
        <div class="msg-side-head">
          <h2 id="msg-side-title">${t("messages.conversations")}</h2>
        </div>
        <div class="msg-search" role="search">
          <label for="msg-search" class="visually-hidden">${t("messages.search_label")}</label>
          <div class="search-box"><${Icon} name="search" />
            <input id="msg-search" class="input" type="search" value=${query} autocomplete="off"
              placeholder=${t("messages.search_placeholder")} aria-describedby="msg-search-hint"
              onInput=${(e) => setQuery(e.target.value)}
              onKeyDown=${(e) => e.key === "Escape" && setQuery("")} /></div>
          <p id="msg-search-hint" class="msg-hint">${t("messages.search_hint")}</p>
        </div>
        <div class="msg-side-body">
          ${searching
            ? html`<${SearchResults} q=${query.trim()} results=${q === query.trim() ? results : null} error=${searchError} isOnline=${isOnline} onPick=${pick} />`
            : html`
              ${listError && html`<div class="msg-pad"><${Alert}>${listError}<//></div>`}
              ${convs === null ? html`<p class="msg-pad muted small">${t("common.loading")}</p>`
                : convs.length ? html`<${ConversationList} items=${convs} selected=${id} isOnline=${isOnline} />`
                : !listError && html`<div class="msg-empty"><${Icon} name="inbox" /><p>${t("messages.no_conversations")}</p></div>`}`}
        </div>
      </section>
      <section class="msg-main" aria-label=${t("messages.thread")}>
        ${id
          ? html`<${Thread} key=${id} peerId=${id} session=${session} isOnline=${isOnline}
              onBack=${() => navigate("/app/messages")} onActivity=${onActivity} onRead=${onRead} />`
          : html`<${NoThread} />`}
      </section>
    </div>
  </div>`;
}
