// Consilium service worker: the application shell works offline (so that "Mes dernières
// recherches" stays readable, seed 002 2.3). Network first, cache as the fallback, so a
// deployment is picked up at once. API answers and media are never cached: they hold
// health data and belong to a session.
const CACHE = "consilium-shell-v1";
const SHELL = [
  "/app/",
  "/static/css/app.css",
  "/static/js/main.js",
  "/static/js/lib.js",
  "/static/js/api.js",
  "/static/js/i18n.js",
  "/static/js/router.js",
  "/static/js/session.js",
  "/static/js/components.js",
  "/static/js/icons.js",
  "/static/js/model.js",
  "/static/js/identity.js",
  "/static/js/recent.js",
  "/static/js/history.js",
  "/static/js/media.js",
  "/static/js/pages/activity.js",
  "/static/js/pages/login.js",
  "/static/js/pages/settings.js",
  "/static/js/pages/join.js",
  "/static/js/pages/room.js",
  "/static/js/pages/dossier.js",
  "/static/js/pages/teleconsult.js",
  "/static/js/pages/rcp.js",
  "/static/js/pages/wizard.js",
  "/static/js/pages/documents.js",
  "/static/js/pages/dicom-viewer.js",
  "/static/js/pages/results.js",
  "/static/js/pages/pacs.js",
  "/static/js/pages/dicom-inbox.js",
  "/static/js/upload.js",
  "/static/js/hash-worker.js",
  "/static/js/pages/reset-password.js",
  "/static/js/pages/room-send.js",
  "/static/js/room-client.js",
  "/static/js/room/common.js",
  "/static/js/room/emitter.js",
  "/static/js/room/ice-fallback.js",
  "/static/js/room/live-room.js",
  "/static/js/room/media-session.js",
  "/static/js/room/pause-sync.js",
  "/static/js/room/visibility.js",
  "/static/js/room/tiles.js",
  "/static/js/room/reception.js",
  "/static/js/room/state.js",
  "/static/js/live.js",
  "/static/js/pages/messages.js",
  "/static/vendor/preact.mjs",
  "/static/vendor/hooks.mjs",
  "/static/vendor/htm.mjs",
  "/static/vendor/socket.io.mjs",
  "/static/vendor/noble/sha2.js",
  "/static/vendor/noble/_md.js",
  "/static/vendor/noble/_u64.js",
  "/static/vendor/noble/utils.js",
  "/static/vendor/tus.min.js",
  "/static/i18n/fr.json",
  "/static/i18n/en.json",
  "/static/icons/icon.svg",
  "/static/icons/icon-192.png",
  "/manifest.webmanifest",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((c) => Promise.all(SHELL.map((url) => c.add(url).catch(() => undefined))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/socket.io/")) return;
  const isPage = req.mode === "navigate" && (url.pathname.startsWith("/app") || url.pathname.startsWith("/join/"));
  const isShell = url.pathname.startsWith("/static/") || url.pathname === "/manifest.webmanifest";
  if (!isPage && !isShell) return;
  event.respondWith(
    fetch(req)
      .then((resp) => {
        if (resp.ok && isShell) {
          const copy = resp.clone();
          caches.open(CACHE).then((c) => c.put(req, copy));
        }
        return resp;
      })
      .catch(async () => {
        const cached = await caches.match(isPage ? "/app/" : req);
        return cached || Response.error();
      }),
  );
});
