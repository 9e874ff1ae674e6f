// Entry point: load the catalogue, then render the screen that matches the path.
import { onUnauthorized } from "./api.js";
import { Shell, Toasts } from "./components.js";
import { loadCatalogue, t } from "./i18n.js";
import { html, render, useEffect, useState } from "./lib.js";
import { ActivityPage } from "./pages/activity.js";
import { DicomInboxPage } from "./pages/dicom-inbox.js";
import { DossierPage } from "./pages/dossier.js";
import { JoinPage } from "./pages/join.js";
import { LoginPage } from "./pages/login.js";
import { MessagesPage } from "./pages/messages.js";
import { RcpMeetingPage, RcpPlanPage } from "./pages/rcp.js";
import { ResetPasswordPage } from "./pages/reset-password.js";
import { RoomPage } from "./pages/room.js";
import { SettingsPage } from "./pages/settings.js";
import { WizardPage } from "./pages/wizard.js";
import { match, navigate, useLocation } from "./router.js";
import { setSession, useSession } from "./session.js";

// Pages that need a signed-in professional, inside the application shell.
const USER_ROUTES = [
  ["/app", ActivityPage],
  ["/app/settings", SettingsPage],
  ["/app/dossiers/new", WizardPage],
  ["/app/dossiers/:id", DossierPage],
  ["/app/messages", MessagesPage],
  ["/app/rcp/new", RcpPlanPage],
  ["/app/rcp/:id", RcpMeetingPage],
  ["/app/dicom-inbox", DicomInboxPage],
  ["/app/messages/:id", MessagesPage],
];

onUnauthorized(() => {
  setSession(null);
  const open = ["/app/login", "/app/reset-password", "/join/"];
  if (!open.some((p) => location.pathname.startsWith(p))) {
    navigate(`/app/login?expired=1&next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
  }
});

function App() {
  const { path, query } = useLocation();
  const session = useSession();
  const [, setLangTick] = useState(0);
  useEffect(() => {
    const fn = () => setLangTick((n) => n + 1);
    window.addEventListener("consilium:lang", fn);
    return () => window.removeEventListener("consilium:lang", fn);
  }, []);

  let params = match("/join/:token", path);
  if (params) return html`<${JoinPage} token=${params.token} /><${Toasts} />`;
  if (match("/app/login", path)) return html`<${LoginPage} query=${query} />`;
  if (match("/app/reset-password", path)) return html`<${ResetPasswordPage} />`;

  if (session === undefined) {
    return html`<div class="boot"><div class="boot-card" role="status"><span class="brand-mark"></span><p>${t("common.loading")}</p></div></div>`;
  }
  if (session === null) {
    navigate(`/app/login?next=${encodeURIComponent(path + location.search)}`, { replace: true });
    return null;
  }
  params = match("/app/rooms/:id", path);
  if (params) return html`<${RoomPage} roomId=${params.id} session=${session} /><${Toasts} />`;
  if (session.kind !== "user") {
    return html`<${Shell} session=${session}><p>${t("error.account_required")}</p><//>`;
  }
  for (const [pattern, Page] of USER_ROUTES) {
    params = match(pattern, path);
    if (params) return html`<${Shell} session=${session}><${Page} ...${params} query=${query} session=${session} /><//><${Toasts} />`;
  }
  return html`<${Shell} session=${session}><h1>${t("error.page_not_found")}</h1><p><a href="/app/">${t("nav.activity")}</a></p><//>`;
}

async function start() {
  await loadCatalogue();
  const root = document.getElementById("app");
  root.classList.remove("boot");
  render(html`<${App} />`, root);
  if ("serviceWorker" in navigator && location.protocol !== "file:") {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((e) => console.warn("service worker", e));
  }
}

start();
