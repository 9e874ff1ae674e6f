"""The audit log: written for sign-in events, readable by administrators only, and
append-only in the database itself."""

from __future__ import annotations

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from core import audit
from core.context import DB
from core.seed import DEMO_PASSWORD


async def test_admins_read_the_audit_log_and_practitioners_may_not(client, users):
    await client.post(
        "/api/v1/auth/login",
        json={"email": "requerant@demo.consilium.fr", "password": "wrong-password-1"},
    )
    await client.post(
        "/api/v1/auth/login",
        json={"email": "requerant@demo.consilium.fr", "password": DEMO_PASSWORD},
    )
    client.sign_out()  # drop the pending sign-in's cookie
    await client.sign_in_as(users["requester"].id)
    r = await client.get("/api/v1/audit")
    assert r.status == 403
    assert (await r.json())["code"] == "admin_required"
    await client.sign_in_as(users["admin"].id)
    r = await client.get("/api/v1/audit", params={"action": "auth.login"})
    assert r.status == 200
    rows = await r.json()
    assert [row["outcome"] for row in rows] == ["failure"]  # the password step alone is no login
    row = rows[0]
    assert row["object_id"] == str(users["requester"].id)
    assert row["actor_label"] == "requerant@demo.consilium.fr"
    assert row["ip"] == "127.0.0.1"
    r = await client.get("/api/v1/audit", params={"limit": 1})
    assert len(await r.json()) == 1


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log"]
)
async def test_audit_rows_cannot_be_changed_or_deleted(app, users, statement):
    db = app[DB]
    await audit.record_now(db, "test.event", object_type="thing", object_id="1")
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
        async with db.write() as uow:
            await uow.session.execute(text(statement))
    async with db.read() as session:
        count = (await session.execute(text("SELECT count(*) FROM audit_log"))).scalar_one()
        outcome = (
            await session.execute(text("SELECT outcome FROM audit_log WHERE action='test.event'"))
        ).scalar_one()
    assert count >= 1 and outcome == "success"
