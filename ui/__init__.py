"""The browser client: one HTML page, CSS and JavaScript modules, all served by Consilium.

Routes:
- ``GET /`` redirects to ``/app/``.
- ``GET /app/…`` and ``GET /join/<token>`` answer the application page; the client-side
  router (``static/js/router.js``) picks the screen from the path.
- ``GET /static/…`` serves ``ui/static`` (with the npm libraries copied into
  ``static/vendor`` by ``make ui-assets``).
- ``GET /sw.js`` and ``GET /manifest.webmanifest`` at the root, so that the service worker's
  scope covers the whole application.

See docs/ui.md for the choices (no bundler, Preact + htm, French first).
"""

from __future__ import annotations

from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

log = structlog.get_logger("consilium.ui")

STATIC = Path(__file__).parent / "static"
VENDOR = STATIC / "vendor"
VENDOR_FILES = (
    "preact.mjs",
    "hooks.mjs",
    "htm.mjs",
    "socket.io.mjs",
    "noble/sha2.js",
    "tus.min.js",
)


def assets_missing() -> list[str]:
    """The vendored libraries that `make ui-assets` has not produced yet."""
    return [name for name in VENDOR_FILES if not (VENDOR / name).is_file()]


def _page(path: Path, content_type: str, **headers: str) -> web.FileResponse:
    resp = web.FileResponse(path, headers={"Cache-Control": "no-cache", **headers})
    resp.content_type = content_type
    return resp


async def _redirect_to_app(request: web.Request) -> web.StreamResponse:
    return web.Response(status=302, headers={"Location": "/app/"})


async def _app_page(request: web.Request) -> web.StreamResponse:
    return _page(STATIC / "index.html", "text/html")


async def _service_worker(request: web.Request) -> web.StreamResponse:
    return _page(STATIC / "sw.js", "text/javascript", **{"Service-Worker-Allowed": "/"})


async def _manifest(request: web.Request) -> web.StreamResponse:
    return _page(STATIC / "manifest.webmanifest", "application/manifest+json")


@web.middleware
async def _static_cache(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    # Revalidate every time (ETag / Last-Modified make that cheap): a deployment never leaves
    # a browser with yesterday's modules. The service worker keeps the offline copy.
    if request.path.startswith("/static/"):
        resp.headers.setdefault("Cache-Control", "no-cache")
    return resp


def _serve_join_page(app: web.Application) -> None:
    """``/join/<token>``: when ``rooms`` owns the route (it checks the token and answers a
    plain error page for a dead link), it asks us for the page through its ``JOIN_PAGE``
    hook; otherwise we serve the route ourselves."""
    from core.context import JOIN_PAGE

    owned = any(r.canonical == "/join/{token}" for r in app.router.resources())
    if owned:

        async def join_page(request: web.Request, token: str) -> web.StreamResponse:
            return await _app_page(request)

        app[JOIN_PAGE] = join_page
    else:
        app.router.add_get("/join/{token}", _app_page)


def setup(app: web.Application) -> None:
    """Register the pages, the static assets, the manifest and the service worker."""
    missing = assets_missing()
    if missing:
        log.warning("ui assets missing: run `make ui-assets`", missing=missing)
    app.middlewares.append(_static_cache)
    app.router.add_get("/", _redirect_to_app)
    app.router.add_get("/app", _redirect_to_app)
    app.router.add_get("/app/{tail:.*}", _app_page)
    _serve_join_page(app)
    app.router.add_get("/sw.js", _service_worker)
    app.router.add_get("/manifest.webmanifest", _manifest)
    app.router.add_static("/static/", STATIC, append_version=False)
