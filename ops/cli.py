"""``consilium api-key create|list|revoke``: server API keys from the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from core.config import load_settings


def _run(fn: Any) -> int:
    from core import audit
    from core.db import Database
    from core.errors import Problem
    from core.events import EventBus

    settings = load_settings()
    audit.configure_chain(settings.secret_key)

    async def go() -> None:
        db = Database(settings.database_url, EventBus())
        try:
            await fn(db, settings)
        finally:
            await db.close()

    try:
        asyncio.run(go())
    except Problem as p:
        print(f"consilium: {p.detail or p.title}", file=sys.stderr)
        return 1
    return 0


def _create(args: argparse.Namespace) -> int:
    from ops import apikeys

    async def fn(db: Any, settings: Any) -> None:
        key, secret = await apikeys.create_key(
            db, settings, name=args.name, user_email=args.user, actor=None
        )
        print(f"API key: {key.id}")
        print(f"API secret: {secret}")
        print("The secret is shown once: keep it in the application's secret store.")

    return _run(fn)


def _list(args: argparse.Namespace) -> int:
    from ops import apikeys

    async def fn(db: Any, settings: Any) -> None:
        for key, email in await apikeys.list_keys(db):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            print(f"{key.id}\t{state}\t{email}\t{key.created_at:%Y-%m-%d %H:%M}\t{key.name}")

    return _run(fn)


def _revoke(args: argparse.Namespace) -> int:
    from ops import apikeys

    async def fn(db: Any, settings: Any) -> None:
        key = await apikeys.revoke_key(db, args.key_id, actor=None)
        print(f"Revoked {key.id}")

    return _run(fn)


def register(sub: Any) -> None:
    p = sub.add_parser("api-key", help="server API keys (other applications)")
    keys = p.add_subparsers(dest="api_key_cmd", required=True)
    c = keys.add_parser("create", help="create a key acting as an account; prints its secret")
    c.add_argument("--name", required=True, help="what the key is for (the application)")
    c.add_argument("--user", required=True, metavar="EMAIL", help="the account it acts as")
    c.set_defaults(fn=_create)
    ls = keys.add_parser("list", help="list keys")
    ls.set_defaults(fn=_list)
    r = keys.add_parser("revoke", help="revoke a key and every token minted with it")
    r.add_argument("key_id")
    r.set_defaults(fn=_revoke)
