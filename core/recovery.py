"""Forgotten password: a link by e-mail, valid ``password_reset_minutes`` (30), used once.

``POST /auth/password/forgot {email}`` always answers 202, whether an account exists or not,
in the same time (the e-mail is sent in the background): the answer reveals nothing. The link
carries a token that needs no table: the account id, a deadline and an HMAC (keyed by the
installation's secret) over them *and* the account's current password hash and last sign-in.
Changing the password, or signing in, changes what the HMAC covers: a used or superseded link
stops working by itself.

``POST /auth/password/reset {token, password}`` sets the new password, ends every session of
the account, forgives the wrong passwords typed from the same address and tells the owner by
e-mail. It does not sign in: the second factor is still asked at the next sign-in, so a
stolen mailbox alone does not open an account protected by an authenticator app.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import struct
import time
import uuid
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from core import accounts, audit, passwords
from core.accounts import AccountEmail
from core.api import Api
from core.auth import client_ip
from core.config import Settings
from core.context import DB, LIMITER, NOTIFIER, SESSIONS, SETTINGS
from core.db import Database
from core.errors import BadRequest, TooManyRequests
from core.notify import Email
from core.throttle import SignInThrottle, Source

log = logging.getLogger(__name__)

TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("recovery_tasks")


class ForgotIn(BaseModel):
    email: AccountEmail


class ResetIn(BaseModel):
    token: str = Field(min_length=10, max_length=200)
    password: str = Field(min_length=1, max_length=512)


class InvalidToken(BadRequest):
    code, title = "invalid_token", "This link is not valid any more"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(settings: Settings, user: accounts.User, payload: bytes) -> bytes:
    state = (
        f"{user.password_hash or ''}|{user.last_login_at.isoformat() if user.last_login_at else ''}"
    )
    msg = b"password-reset|" + payload + b"|" + state.encode()
    return hmac.new(settings.secret_key.encode(), msg, hashlib.sha256).digest()[:20]


def make_token(settings: Settings, user: accounts.User, *, now: float | None = None) -> str:
    deadline = int(now if now is not None else time.time()) + settings.password_reset_minutes * 60
    payload = user.id.bytes + struct.pack(">I", deadline)
    return f"{_b64(payload)}.{_b64(_mac(settings, user, payload))}"


def _token_user_id(token: str) -> tuple[uuid.UUID, int, bytes, bytes]:
    try:
        head, _, tail = token.partition(".")
        payload, mac = _unb64(head), _unb64(tail)
        if len(payload) != 20:
            raise ValueError("length")
        (deadline,) = struct.unpack(">I", payload[16:])
        return uuid.UUID(bytes=payload[:16]), deadline, payload, mac
    except (ValueError, struct.error) as e:
        raise InvalidToken("This link is malformed; ask for a new one") from e


def check_token(settings: Settings, user: accounts.User | None, token: str) -> None:
    """Raise :class:`InvalidToken` unless ``token`` is a live link for ``user``."""
    user_id, deadline, payload, mac = _token_user_id(token)
    if user is None or user.id != user_id or not user.active:
        raise InvalidToken("This link is not valid; ask for a new one")
    if not hmac.compare_digest(_mac(settings, user, payload), mac):
        raise InvalidToken("This link was already used or replaced; ask for a new one")
    if time.time() > deadline:
        raise InvalidToken("This link has expired; ask for a new one", code="token_expired")


def _link(settings: Settings, token: str) -> str:
    # In the fragment: never sent to a server, so never in an access log or a Referer.
    return f"{settings.public_url}/app/reset-password#token={token}"


async def _send_link(app: web.Application, user_id: uuid.UUID, token: str) -> None:
    settings = app[SETTINGS]
    async with app[DB].read() as session:
        user = await session.get(accounts.User, user_id)
    if user is None:
        return
    minutes = settings.password_reset_minutes
    text = (
        f"Bonjour {user.display_name},\n\n"
        "Une réinitialisation du mot de passe de votre compte Consilium a été demandée.\n"
        f"Pour choisir un nouveau mot de passe, ouvrez ce lien (valable {minutes} minutes, "
        f"une seule fois) :\n\n{_link(settings, token)}\n\n"
        "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message : votre mot de "
        "passe actuel reste valable.\n\nConsilium"
    )
    try:
        await app[NOTIFIER].send_email(
            Email(
                to=user.email,
                subject="Consilium — réinitialisation de votre mot de passe",
                text=text,
            )
        )
    except Exception:
        log.exception("password reset e-mail to %s failed", user.id)


def _spawn(app: web.Application, coro: Any) -> None:
    tasks = app[TASKS]
    task = asyncio.get_running_loop().create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def request_reset(
    db: Database, settings: Settings, email: str, *, ip: str, allowed: bool
) -> tuple[uuid.UUID, str] | None:
    """Audit a reset request; the account id and the link's token when a link is to be sent
    (an active account with a password, within the address's limit), else None."""
    async with db.write() as uow:
        user = await accounts.get_by_email(uow.session, email)
        usable = user is not None and user.active and user.password_hash is not None
        audit.record(
            uow.session,
            "account.password_reset_requested",
            object_type="user",
            object_id=user.id if user is not None else "",
            ip=ip,
            outcome="success" if usable and allowed else "denied",
            actor_label=email,
        )
    if not (usable and allowed):
        return None
    assert user is not None
    return user.id, make_token(settings, user)


async def reset_password(
    db: Database, settings: Settings, token: str, password: str, *, ip: str
) -> tuple[uuid.UUID, str, str]:
    """Set a new password with a valid link's token, audited; the account's id, e-mail and
    name (its sessions are ended by the caller, which holds the session store)."""
    user_id, *_ = _token_user_id(token)
    passwords.check_strength(password)
    new_hash = await asyncio.to_thread(passwords.hash_password, password)
    async with db.write() as uow:
        user = await uow.session.get(accounts.User, user_id, with_for_update=True)
        check_token(settings, user, token)
        assert user is not None
        if passwords.verify_password(user.password_hash, password):
            raise InvalidToken(
                "Choose a password different from the current one", code="same_password"
            )
        user.password_hash = new_hash
        audit.record(
            uow.session,
            "account.password_reset",
            actor_id=user.id,
            actor_label=user.email,
            object_type="user",
            object_id=user.id,
            ip=ip,
        )
        return user_id, user.email, user.display_name


def setup(app: web.Application) -> None:
    api = Api.of(app)
    tasks: set[asyncio.Task[None]] = set()
    app[TASKS] = tasks

    async def drain(app: web.Application) -> None:
        # At shutdown, before the cleanup closes the database: cancelled and awaited.
        pending: list[asyncio.Task[None]] = [*app[TASKS]]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    app.on_shutdown.append(drain)

    @api.post(
        "/auth/password/forgot", body=ForgotIn, auth="none", tags=["auth"], status=202, errors=[429]
    )
    async def forgot(request: web.Request, body: ForgotIn) -> web.StreamResponse:
        """Send a link to choose a new password, if an active account has this address.
        The answer is the same either way."""
        app = request.app
        settings = app[SETTINGS]
        ip = client_ip(request)
        limiter = app[LIMITER]
        if not await limiter.hit(f"pwreset-ip:{ip}", limit=10, window=900):
            raise TooManyRequests(
                "Too many requests from this address; wait a while", retry_after=900
            )
        email = body.email
        key = "pwreset-mail:" + hashlib.sha256(email.encode()).hexdigest()[:32]
        allowed = await limiter.hit(key, limit=3, window=3600)
        link = await request_reset(app[DB], settings, email, ip=ip, allowed=allowed)
        if link is not None:
            _spawn(app, _send_link(app, *link))
        return web.json_response(
            {"detail": "If an account has this address, a link was sent to it."}, status=202
        )

    @api.post(
        "/auth/password/reset",
        body=ResetIn,
        auth="none",
        tags=["auth"],
        status=204,
        errors=[400, 422, 429],
    )
    async def reset(request: web.Request, body: ResetIn) -> web.StreamResponse:
        """Choose a new password with the link's token; every session of the account ends."""
        app = request.app
        settings = app[SETTINGS]
        ip = client_ip(request)
        if not await app[LIMITER].hit(f"pwreset-try:{ip}", limit=20, window=900):
            raise TooManyRequests(
                "Too many attempts from this address; wait a while", retry_after=900
            )
        user_id, email, name = await reset_password(
            app[DB], settings, body.token, body.password, ip=ip
        )
        await app[SESSIONS].store.delete_for_subject(user_id)
        # Whoever proved the mailbox from here is not kept waiting by earlier wrong passwords.
        await SignInThrottle(app[LIMITER], settings).success(email, Source(ip=ip))
        text = (
            f"Bonjour {name},\n\nLe mot de passe de votre compte Consilium vient d'être modifié "
            "et toutes vos sessions ont été fermées.\nSi vous n'êtes pas à l'origine de ce "
            "changement, prévenez sans attendre l'administrateur de votre établissement.\n\n"
            "Consilium"
        )
        _spawn(app, _notify_changed(app, email, text))
        return web.Response(status=204)


async def _notify_changed(app: web.Application, email: str, text: str) -> None:
    try:
        await app[NOTIFIER].send_email(
            Email(to=email, subject="Consilium — votre mot de passe a été modifié", text=text)
        )
    except Exception:
        log.exception("password change notice failed")
