"""The vault's download page (``/vault/{token}``), for recipients without an account (a
patient, a colleague outside the hospital): the product's look (the application's own
stylesheet), the document's name and size, how long the link stays valid, one form (the code
received by SMS) and a plain message when the code is wrong or the link expired. No script."""

from __future__ import annotations

import html
from datetime import datetime

from aiohttp import web

from core.db import utcnow
from core.paris_time import paris_datetime


def human_size(size: int) -> str:
    """« 245 Ko », « 1,3 Mo »: the sizes the application's pages show."""
    if size < 1024:
        return f"{size} octets"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} Ko"
    return f"{size / (1024 * 1024):.1f} Mo".replace(".", ",")


def remaining(expires_at: datetime, now: datetime | None = None) -> str:
    """« 6 jours et 23 heures », « 3 heures », « 12 minutes »: what is left of a link."""
    seconds = max(0, int((expires_at - (now or utcnow())).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60

    def unit(n: int, word: str) -> str:
        return f"{n} {word}{'s' if n > 1 else ''}"

    if days:
        return unit(days, "jour") + (f" et {unit(hours, 'heure')}" if hours else "")
    if hours:
        return unit(hours, "heure")
    return unit(max(1, minutes), "minute")


def code_form(
    token: str, expires_at: datetime, error: str, *, filename: str = "", size: int | None = None
) -> str:
    until = paris_datetime(expires_at)
    doc = ""
    if filename:
        doc = (
            "<div class='vault-doc'><span class='vault-doc-icon' aria-hidden='true'>PDF</span>"
            f"<div><strong>{html.escape(filename)}</strong>"
            + (f"<div class='small muted'>{human_size(size)}</div>" if size is not None else "")
            + "</div></div>"
        )
    return (
        "<h1>Un document médical vous a été transmis</h1>"
        "<p>Il est déposé dans le coffre-fort numérique Consilium. Saisissez le code à "
        "6 chiffres reçu par SMS pour le télécharger.</p>"
        + doc
        + f"<p class='small muted'>Lien valable encore {remaining(expires_at)} "
        f"(jusqu'au {until}).</p>"
        + (
            f"<div class='alert alert-error' role='alert'><strong>Code non accepté</strong>"
            f"{html.escape(error)}</div>"
            if error
            else ""
        )
        + f"<form method='post' action='/vault/{html.escape(token)}'>"
        "<div class='field'><label for='code'>Code reçu par SMS</label>"
        "<input id='code' class='input vault-code' name='code' inputmode='numeric' "
        "autocomplete='one-time-code' pattern='[0-9]{6}' maxlength='6' required"
        + (" aria-invalid='true' aria-describedby='code-help'" if error else "")
        + "><span id='code-help' class='hint'>6 chiffres, sans espace.</span></div>"
        "<button type='submit' class='btn btn-primary'>Télécharger le document</button></form>"
    )


def refusal(title: str, detail: str) -> str:
    """The page of a link that no longer opens anything (expired, blocked, unknown)."""
    return (
        f"<h1>{html.escape(title)}</h1>"
        f"<div class='alert alert-warning' role='alert'>{html.escape(detail)}</div>"
        "<p>Demandez à la personne qui vous a envoyé ce document de vous le renvoyer : "
        "vous recevrez un nouveau lien et un nouveau code.</p>"
    )


def page(body: str, *, status: int = 200, title: str = "") -> web.Response:
    text = (
        "<!doctype html><html lang='fr'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title or 'Document à télécharger')} · Consilium</title>"
        "<link rel='stylesheet' href='/static/css/app.css'>"
        "</head><body><div class='join-page'>"
        "<header class='topbar'><span class='brand'><span class='brand-mark' aria-hidden='true'>"
        "</span><span class='brand-name'>Consilium</span></span>"
        "<span class='spacer'></span><span class='small'>Coffre-fort numérique</span></header>"
        "<main class='join-main' id='main'><div class='card join-card vault-card'>"
        f"<div class='card-body stack'>{body}</div></div></main></div></body></html>"
    )
    resp = web.Response(text=text, content_type="text/html", charset="utf-8", status=status)
    # The application's stylesheet and nothing else: no script, no inline style.
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp
