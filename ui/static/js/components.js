// Shared pieces: the application shell, alerts, dialogs, toasts, error messages.
import { t, setLang, currentLang } from "./i18n.js";
import { Icon } from "./icons.js";
import { html, useEffect, useRef, useState } from "./lib.js";
import { onLive, startLive, stopLive, useUnread } from "./live.js";
import { Link, navigate } from "./router.js";
import { signOut } from "./session.js";

export function initials(name) {
  return (name || "?")
    .replace(/^(Dr|Pr|Mme|M\.)\s+/i, "")
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => w[0].toUpperCase())
    .join("");
}

/** The message to show for an API error, from its stable `code`. */
export function errorMessage(err) {
  if (!err) return "";
  if (err.code === "account_locked") {
    const secs = Number(err.body && err.body.retry_after);
    const minutes = Number.isFinite(secs) && secs > 0 ? Math.ceil(secs / 60) : null;
    return minutes ? t("error.account_locked_minutes", { minutes }) : t("error.account_locked");
  }
  if (err.code === "login_throttled") {
    const secs = Math.max(1, Number(err.body && err.body.retry_after) || 60);
    const delay =
      secs < 60 ? t("error.delay_seconds", { seconds: secs }) : t("error.delay_minutes", { minutes: Math.ceil(secs / 60) });
    return t("error.login_throttled", { delay });
  }
  const key = `error.${err.code}`;
  const s = t(key);
  if (s !== key) return s;
  if (err.status === 0) return t("error.network_error");
  // A refusal the client has no words of its own for: the server's reason (problem+json
  // `detail`, written in French for the user) rather than a generic sentence.
  const detail = err.body && err.body.code && typeof err.body.detail === "string" ? err.body.detail.trim() : "";
  if (detail && err.status >= 400 && err.status < 500 && detail.length <= 500) return detail;
  if (err.status === 429) return t("error.too_many_requests");
  if (err.status === 403) return t("error.forbidden");
  if (err.status === 404) return t("error.not_found");
  if (err.status >= 500) return t("error.server");
  return t("error.generic");
}

export function Alert({ kind = "error", title, children }) {
  if (!children && !title) return null;
  const role = kind === "error" ? "alert" : "status";
  return html`<div class=${`alert alert-${kind}`} role=${role}>
    ${title && html`<strong>${title}</strong>`}${children}
  </div>`;
}

export function LangSwitch() {
  const other = currentLang() === "fr" ? "en" : "fr";
  const change = async () => {
    await setLang(other);
    window.dispatchEvent(new Event("consilium:lang"));
  };
  return html`<button type="button" class="btn btn-ghost btn-sm" onClick=${change} lang=${other}
    title=${t("lang.switch_to")}><span class="label">${other === "en" ? "English" : "Français"}</span><span class="short" aria-hidden="true">${other.toUpperCase()}</span></button>`;
}

/** "Messages" in the navigation, with the number of unread direct messages (live). */
function MessagesLink({ session }) {
  const unread = useUnread();
  const isUser = session && session.kind === "user";
  useEffect(() => {
    if (!isUser) return undefined;
    startLive();
    // A message from a colleague while I am elsewhere in the application: a toast.
    return onLive("chat:message", (m) => {
      if (m.room_id || !m.sender || m.sender.id === session.id) return;
      if (location.pathname.startsWith("/app/messages")) return;
      toast(t("messages.toast_new", { name: m.sender.name }));
    });
  }, [isUser, session && session.id]);
  const here = location.pathname === "/app/messages" || location.pathname.startsWith("/app/messages/");
  const shown = unread > 99 ? "99+" : String(unread);
  return html`<${Link} href="/app/messages" class="nav-messages" aria-current=${here ? "page" : undefined}>
    <span class="nav-icon"><${Icon} name="chat" />${unread > 0 && html`<span class="nav-badge" aria-hidden="true">${shown}</span>`}</span>
    <span class="label">${t("messages.nav")}</span>
    ${unread > 0 && html`<span class="visually-hidden">${t(unread === 1 ? "messages.nav_unread_one" : "messages.nav_unread_many", { count: unread })}</span>`}
  <//>`;
}

export function Shell({ session, children }) {
  const onLogout = async () => {
    stopLive();
    const provider = await signOut();
    if (provider) window.location.assign(provider); // ends the Pro Santé Connect session too
    else navigate("/app/login", { replace: true });
  };
  return html`<div class="shell">
    <a class="skip-link" href="#main">${t("shell.skip")}</a>
    <header class="topbar">
      <${Link} href="/app/" class="brand" aria-label=${t("shell.home")}>
        <span class="brand-mark" aria-hidden="true"></span><span class="brand-name">Consilium</span>
      <//>
      <nav aria-label=${t("shell.nav")}>
        <${Link} href="/app/"><${Icon} name="home" /><span class="label">${t("nav.activity")}</span><//>
        ${session && session.kind === "user" && html`
          <${Link} href="/app/dossiers/new"><${Icon} name="plus" /><span class="label">${t("nav.new_dossier")}</span><//>
          <${MessagesLink} session=${session} />
          ${(session.role === "secretary" || session.role === "admin") && html`<${Link} href="/app/dicom-inbox"><${Icon} name="inbox" /><span class="label">${t("inbox.nav")}</span><//>`}
          <${Link} href="/app/settings"><${Icon} name="settings" /><span class="label">${t("nav.settings")}</span><//>`}
      </nav>
      <span class="spacer"></span>
      <${LangSwitch} />
      ${session && html`<span class="user-chip">
        <span class="avatar" aria-hidden="true">${initials(session.name)}</span>
        <span class="user-name">${session.name}</span>
      </span>`}
      <button type="button" class="btn btn-ghost btn-sm" onClick=${onLogout}>
        <${Icon} name="logout" /><span class="label">${t("nav.logout")}</span>
      </button>
    </header>
    <main id="main" class="main" tabindex="-1">${children}</main>
    <footer class="footer">${t("shell.footer")}</footer>
  </div>`;
}

let dialogSeq = 0;
/** A modal <dialog>: focus is trapped by the browser, Escape closes it. Each dialog names
 * itself by its own title (a page may hold several dialogs: the ids must differ). */
export function Dialog({ open, title, onClose, children, footer }) {
  const ref = useRef(null);
  const titleId = useRef(null);
  if (titleId.current === null) titleId.current = `dlg-title-${++dialogSeq}`;
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return html`<dialog ref=${ref} aria-labelledby=${titleId.current} onClose=${onClose} onCancel=${onClose}>
    <div class="card-header row-between">
      <h2 id=${titleId.current}>${title}</h2>
      <button type="button" class="btn btn-ghost btn-icon" aria-label=${t("common.close")} onClick=${onClose}><${Icon} name="x" /></button>
    </div>
    <div class="card-body">${open && children}</div>
    ${footer && html`<div class="dialog-foot">${footer}</div>`}
  </dialog>`;
}

let toastSeq = 0;
const toastSubscribers = new Set();
export function toast(text) {
  const item = { id: ++toastSeq, text };
  toastSubscribers.forEach((fn) => fn(item));
}
export function Toasts() {
  const [items, setItems] = useState([]);
  useEffect(() => {
    const fn = (item) => {
      setItems((xs) => [...xs, item]);
      setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== item.id)), 5000);
    };
    toastSubscribers.add(fn);
    return () => toastSubscribers.delete(fn);
  }, []);
  return html`<div class="toast-zone" role="status" aria-live="polite">
    ${items.map((i) => html`<div class="toast" key=${i.id}>${i.text}</div>`)}
  </div>`;
}

export function Empty({ icon = "inbox", children }) {
  return html`<div class="empty"><${Icon} name=${icon} /><p>${children}</p></div>`;
}

export function useTitle(title) {
  useEffect(() => {
    document.title = title ? `${title} · Consilium` : "Consilium";
  }, [title]);
}
