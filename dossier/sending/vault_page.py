"""The vault's download page (``/vault/{token}``), for recipients without an account: plain
HTML with one form (the code received by SMS), no script."""

from __future__ import annotations

import html
from datetime import datetime

from aiohttp import web

from core.paris_time import paris_datetime


def code_form(token: str, expires_at: datetime, error: str) -> str:
    until = paris_datetime(expires_at)
    return (
        f"<p>Un document médical vous a été transmis de façon sécurisée. "
        f"Ce lien est valable jusqu'au {until}.</p>"
        + (f"<p class='error' role='alert'>{html.escape(error)}</p>" if error else "")
        + f"<form method='post' action='/vault/{html.escape(token)}'>"
        "<label for='code'>Code reçu par SMS</label> "
        "<input id='code' name='code' inputmode='numeric' autocomplete='one-time-code' "
        "pattern='[0-9]{6}' maxlength='6' required> "
        "<button type='submit'>Télécharger le document</button></form>"
    )


def page(body: str, *, status: int = 200, raw: bool = False) -> web.Response:
    content = body if raw else f"<p role='alert'>{html.escape(body)}</p>"
    text = (
        "<!doctype html><html lang='fr'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<title>Consilium — coffre-fort numérique</title>"
        "</head><body><h1>Consilium — coffre-fort numérique</h1>"
        f"{content}</body></html>"
    )
    resp = web.Response(text=text, content_type="text/html", charset="utf-8", status=status)
    # The page's only style is inline: allow exactly that, nothing else.
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp
