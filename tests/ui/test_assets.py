"""The client's files are served by Consilium itself, under the strict CSP, with complete
catalogues (no browser needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ui import STATIC

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@SQLITE
async def test_root_redirects_to_the_app_and_app_paths_serve_the_page(client):
    r = await client.get("/", allow_redirects=False)
    assert r.status == 302
    assert r.headers["Location"] == "/app/"
    for path in ("/app/", "/app/settings", "/app/dossiers/new", "/app/rooms/x"):
        r = await client.get(path)
        assert r.status == 200, path
        assert r.content_type == "text/html"
        body = await r.text()
        assert '<script type="module" src="/static/js/main.js">' in body
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]


def test_pages_have_no_inline_script_or_style():
    for page in STATIC.rglob("*.html"):
        text = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), page
        assert "style=" not in text and "<style" not in text, page
    for module in (STATIC / "js").rglob("*.js"):
        # Templates set no style="…" attribute (the CSP would drop it): classes, or CSSOM.
        assert not re.search(r"\sstyle=\"", module.read_text()), module


@SQLITE
async def test_static_files_manifest_and_service_worker_are_served(client):
    r = await client.get("/static/js/main.js")
    assert r.status == 200
    assert "javascript" in r.content_type
    assert r.headers["Cache-Control"] == "no-cache"
    r = await client.get("/manifest.webmanifest")
    assert r.status == 200
    assert r.content_type == "application/manifest+json"
    manifest = json.loads(await r.text())
    assert manifest["lang"] == "fr"
    assert {"192x192", "512x512"} <= {i["sizes"] for i in manifest["icons"]}
    for icon in manifest["icons"]:
        assert (await client.get(icon["src"])).status == 200, icon["src"]
    r = await client.get("/sw.js")
    assert r.status == 200
    assert r.headers["Service-Worker-Allowed"] == "/"


def test_service_worker_precaches_files_that_exist():
    sw = (STATIC / "sw.js").read_text()
    block = sw.split("const SHELL = [", 1)[1].split("];", 1)[0]
    for url in re.findall(r'"([^"]+)"', block):
        if url.startswith("/static/") and not url.startswith("/static/vendor/"):
            assert (STATIC / url.removeprefix("/static/")).is_file(), url


def test_service_worker_precaches_every_script_module():
    """A module missing from the shell breaks the installed app offline (its import fails)."""
    sw = (STATIC / "sw.js").read_text()
    block = sw.split("const SHELL = [", 1)[1].split("];", 1)[0]
    listed = set(re.findall(r'"([^"]+)"', block))
    modules = {"/static/" + str(p.relative_to(STATIC)) for p in (STATIC / "js").rglob("*.js")}
    assert modules - listed == set()


def test_english_catalogue_has_every_french_message():
    fr = json.loads((STATIC / "i18n" / "fr.json").read_text())
    en = json.loads((STATIC / "i18n" / "en.json").read_text())
    assert set(fr) == set(en)
    for key, text in fr.items():
        assert set(re.findall(r"\{\w+\}", text)) == set(re.findall(r"\{\w+\}", en[key])), key


def test_every_message_key_used_by_the_client_exists():
    fr = json.loads((STATIC / "i18n" / "fr.json").read_text())
    used: set[str] = set()
    for module in (STATIC / "js").rglob("*.js"):
        used |= set(re.findall(r"\bt\(\s*\"([a-z_]+\.[a-z0-9_.]+)\"", module.read_text()))
    missing = sorted(k for k in used if k not in fr)
    assert not missing, missing


def test_npm_dependencies_are_pinned_by_a_lockfile():
    ui = Path(STATIC).parent
    pkg = json.loads((ui / "package.json").read_text())
    lock = json.loads((ui / "package-lock.json").read_text())
    for name, version in pkg["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (name, version)
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_stylesheet_blocks_are_balanced():
    """An unclosed `@media {` silently moves every later rule into that media query (the
    room's connection banner once applied to phones only)."""
    css = re.sub(r"/\*.*?\*/", "", (STATIC / "css" / "app.css").read_text(), flags=re.S)
    depth = 0
    for line_no, line in enumerate(css.splitlines(), 1):
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"app.css: a '}}' without its '{{' at line {line_no}"
        if line.startswith("@media") or (line and not line[0].isspace() and depth == 1):
            # a top-level rule or media query starts only outside any block
            assert depth - (line.count("{") - line.count("}")) == 0, (
                f"app.css line {line_no} starts inside an unclosed block: {line[:60]}"
            )
    assert depth == 0, "app.css: a block is never closed"
