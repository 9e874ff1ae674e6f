"""Presence webhooks from the live layer's hooks, which run once, on the node holding the
participant's connection: participant joined/left, and the room started (its first
participant) or ended (its last one left)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ops.worker import OUTBOX
from rooms.live import LIVE, Live
from rooms.presence import Participant


def _data(p: Participant) -> dict[str, Any]:
    return {
        "room_id": p.room_id,
        "participant_id": p.id,
        "subject_id": p.subject_id,
        "kind": p.kind,
        "role": p.role,
        "name": p.name,
    }


def setup(app: web.Application) -> None:
    if LIVE not in app:
        return
    live, outbox = app[LIVE], app[OUTBOX]

    @live.hooks.on_joined
    async def joined(live: Live, p: Participant) -> None:
        await outbox.record("participant.joined", _data(p))
        if len(await live.state.participants(p.room_id, live.grace)) == 1:
            await outbox.record("room.started", {"room_id": p.room_id})

    @live.hooks.on_left
    async def left(live: Live, p: Participant, reason: str) -> None:
        await outbox.record("participant.left", {**_data(p), "reason": reason})
        if not await live.state.participants(p.room_id, live.grace):
            await outbox.record("room.ended", {"room_id": p.room_id})
