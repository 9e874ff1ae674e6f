"""Demo rooms for ``make run``: a téléconsultation and an e-Staff meeting (idempotent)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core import audit
from core.db import Database, utcnow
from rooms.models import MemberRole, Room, RoomKind, RoomMember, RoomStatus

DEMO_ROOMS = (
    (RoomKind.teleconsultation, "Téléconsultation — Mme Jeanne Petit", 2, timedelta(hours=1)),
    (RoomKind.estaff, "e-Staff endocrinologie — RCP hebdomadaire", 12, timedelta(days=1)),
)


async def seed_demo(db: Database, users: dict[str, Any]) -> None:
    owner, expert = users["requester"], users["expert"]
    start = utcnow().replace(minute=0, second=0, microsecond=0)
    async with db.write() as uow:
        for kind, title, capacity, offset in DEMO_ROOMS:
            exists = await uow.session.scalar(
                select(Room.id).where(Room.owner_id == owner.id, Room.title == title)
            )
            if exists is not None:
                continue
            room = Room(
                kind=kind,
                title=title,
                owner_id=owner.id,
                scheduled_at=start + offset,
                capacity=capacity,
                locked=False,
                status=RoomStatus.open,
            )
            uow.session.add(room)
            await uow.session.flush()
            if kind is RoomKind.estaff:
                uow.session.add(
                    RoomMember(
                        room_id=room.id, user_id=expert.id, role=MemberRole.host, added_by=owner.id
                    )
                )
            audit.record(
                uow.session,
                "room.create",
                actor_label="seed-demo",
                object_type="room",
                object_id=room.id,
                kind=kind.value,
            )
