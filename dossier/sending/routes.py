"""HTTP routes of sending: MSSanté or vault, the vault download (API and HTML page)."""

from __future__ import annotations

from aiohttp import web

from core.auth import client_ip
from core.auth import principal as principal_of
from core.context import DB, LIMITER, NOTIFIER, SETTINGS
from core.errors import Gone, NotFound, Problem, TooManyRequests, ValidationFailed
from core.storage import of as storage_of
from dossier.sending import vault_page
from dossier.sending.actions import (
    find_deposit_document,
    open_deposit,
    send_mss,
    send_vault,
)
from dossier.sending.schemas import SendIn, SendOut, VaultCodeIn
from dossier.web import RouteTable, file_response, uuid_of

TAGS = ["documents"]
routes = RouteTable()

# Sends (MSSanté or vault) one user may make per window of SEND_WINDOW seconds.
SENDS_PER_WINDOW = 20
SEND_WINDOW = 600


@routes.post(
    "/dossiers/{dossier_id}/send", body=SendIn, response=SendOut, tags=TAGS, errors=[403, 429, 502]
)
async def send_document(request: web.Request, body: SendIn) -> SendOut:
    """Send a PDF of the dossier by MSSanté, or through the vault (link + SMS code)."""
    dossier_id = uuid_of(request, "dossier_id")
    p = principal_of(request)
    app = request.app
    # Each send mails, texts or posts to the outside: a few per user and per 10 minutes.
    if not await app[LIMITER].hit(
        f"send:{p.subject_id}", limit=SENDS_PER_WINDOW, window=SEND_WINDOW
    ):
        raise TooManyRequests(
            "Trop d'envois en peu de temps ; réessayez dans quelques minutes.",
            code="send_rate_limited",
            retry_after=SEND_WINDOW,
        )
    if body.channel == "mss":
        if not body.mss_recipients:
            raise ValidationFailed("Choisissez au moins un destinataire.", code="no_recipient")
        sent = await send_mss(
            app[DB],
            storage_of(app),
            app[NOTIFIER],
            p,
            dossier_id,
            body.document_id,
            body.mss_recipients,
            body.message,
        )
        if not sent:
            raise Problem(
                "La messagerie sécurisée n'a pas accepté l'envoi.",
                status=502,
                code="delivery_failed",
                title="Delivery failed",
            )
        return SendOut(channel="mss", sent_to=sent)
    if not body.vault_recipients:
        raise ValidationFailed("Choisissez au moins un destinataire.", code="no_recipient")
    sent, expires = [], None
    for r in body.vault_recipients:
        dep = await send_vault(
            app[DB], app[SETTINGS], app[NOTIFIER], p, dossier_id, body.document_id, r.email, r.phone
        )
        sent.append(r.email)
        expires = dep.expires_at
    return SendOut(channel="vault", sent_to=sent, expires_at=expires)


async def _vault_download(request: web.Request, token: str, code: str) -> web.StreamResponse:
    # Per deposit, 5 wrong codes burn the link; per address, many links cannot be probed.
    if not await request.app[LIMITER].hit(f"vault:{client_ip(request)}", limit=30, window=3600):
        raise TooManyRequests("Trop de tentatives ; réessayez plus tard.", code="rate_limited")
    _dep, doc = await open_deposit(
        request.app[DB], request.app[SETTINGS], token, code, client_ip(request)
    )
    return await file_response(
        request, storage_of(request.app), doc.blob_key, doc.filename, doc.content_type, False
    )


@routes.post(
    "/vault/{token}",
    body=VaultCodeIn,
    auth="none",
    tags=["vault"],
    errors=[403, 404, 410, 429],
    raw_response={"application/pdf": {"schema": {"type": "string"}}},
)
async def vault_api(request: web.Request, body: VaultCodeIn) -> web.StreamResponse:
    """Download a vault document with the code received by SMS."""
    return await _vault_download(request, request.match_info["token"], body.code)


@routes.page("POST", "/vault/{token}")
@routes.page("GET", "/vault/{token}")
async def vault_html(request: web.Request) -> web.StreamResponse:
    """The page the vault e-mail links to: the code form, then the download."""
    token = request.match_info["token"]
    error = ""
    if request.method == "POST":
        form = await request.post()
        try:
            return await _vault_download(request, token, str(form.get("code", "")))
        except (Gone, NotFound) as e:
            return _refused(e)
        except Problem as e:
            error = str(e.detail or e.title)
    try:
        dep, doc = await find_deposit_document(request.app[DB], request.app[SETTINGS], token)
    except (Gone, NotFound) as e:
        return _refused(e)
    form_html = vault_page.code_form(
        token,
        dep.expires_at,
        error,
        filename=doc.filename if doc else "",
        size=doc.size if doc else None,
    )
    return vault_page.page(form_html, status=403 if error else 200)


VAULT_REFUSALS = {
    "vault_expired": "Ce lien a expiré",
    "vault_locked": "Ce lien est bloqué",
    "vault_document_gone": "Ce document n'est plus disponible",
    "vault_not_found": "Ce lien n'est pas valable",
}


def _refused(e: Problem) -> web.Response:
    title = VAULT_REFUSALS.get(e.code, "Ce lien n'est pas valable")
    detail = str(e.detail or "")
    if e.code == "vault_not_found":
        detail = "Ce lien est inconnu : vérifiez qu'il a été copié en entier depuis l'e-mail."
    return vault_page.page(vault_page.refusal(title, detail), status=e.status, title=title)
