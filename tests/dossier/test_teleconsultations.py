"""A téléconsultation planned on a dossier (seed 001, issue 16 items 1–2): the patient gets
the room's link by e-mail (real SMTP sink) and SMS (real HTTP gateway), the professionals an
.ics, reminders go once at their time, rescheduling and cancellation tell everyone, the
activity view filters on the step, and the dossier lists its rooms."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest
from sqlalchemy import select

from core.accounts import Role, create_user
from core.context import DB
from core.db import utcnow
from dossier.models import TeleconsultationReminder
from dossier.teleconsult.actions import send_due_reminders
from tests.conftest import make_settings
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import CARDIO_EMAIL, ENDO, draft_ready_to_sign
from tests.support.live import open_socket

PATIENT_EMAIL = "elise.dupont@example.org"
RELATIVE_MOBILE = "+33611223344"


@pytest.fixture
def settings(database_url, tmp_path, smtp, sms_gateway):
    return make_settings(
        database_url,
        tmp_path / "data",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        sms_gateway_url=sms_gateway.url,
    )


async def _nurse(app) -> Any:
    async with app[DB].write() as uow:
        return await create_user(
            uow.session,
            email="infirmiere@ehpad.example.org",
            password=None,
            role=Role.practitioner,
            first_name="Inès",
            last_name="Garnier",
            title="",
        )


def _has_ics(msg) -> bool:
    return any(p.get_content_type() == "text/calendar" for p in msg.iter_attachments())


async def _with_ics(smtp, address: str, count: int = 1) -> list:
    """The messages to ``address`` that carry an .ics (adding a member tells them too)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline:
        got = [m for m in smtp.to(address) if _has_ics(m)]
        if len(got) >= count:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {count} .ics e-mail(s) to {address}")


def _ics(msg) -> icalendar.Calendar:
    parts = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in msg.iter_attachments()]
    return icalendar.Calendar.from_ical(parts[0].get_payload(decode=True))


async def _plan(demo, as_user, app, at: datetime) -> tuple[Any, dict, dict]:
    u = demo["users"]
    req = await as_user(u["requester"])
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    nurse = await _nurse(app)
    r = await req.post(
        f"/api/v1/dossiers/{d['id']}/teleconsultations",
        json={
            "scheduled_at": at.isoformat(),
            "duration_minutes": 30,
            "practitioner_ids": [str(u["requester"].id), str(u["expert"].id)],
            "nurse_id": str(nurse.id),
            "guests": [
                {"name": "Élise Dupont", "relation": "patient", "email": PATIENT_EMAIL},
                {"name": "Paul Dupont", "relation": "relative", "mobile": RELATIVE_MOBILE},
            ],
        },
    )
    assert r.status == 201, await r.text()
    tc = await r.json()
    tc["nurse_user"] = nurse
    return req, d, tc


async def test_planning_invites_the_patient_and_sends_an_ics_to_professionals(
    demo, as_user, app, smtp, sms_gateway
):
    at = (utcnow() + timedelta(days=3)).replace(second=0, microsecond=0)
    req, d, tc = await _plan(demo, as_user, app, at)
    assert tc["step"] == "planned" and tc["step_label"] == "Téléconsultation planifiée"
    assert [p["name"] for p in tc["practitioners"]] == ["Dr Claire Martin", "Dr Karim Benali"]
    # The patient: the room's personal link, no .ics.
    (inv,) = await smtp.wait_for(PATIENT_EMAIL)
    text = smtp.text_of(inv)
    assert "/join/" in text and "téléconsultation" in text
    # The relative, by SMS.
    sms = await sms_gateway.wait_for(RELATIVE_MOBILE)
    assert "/join/" in sms["text"]
    # The professionals: an e-mail with the .ics, no patient data.
    for email in ("expert@demo.consilium.fr", "infirmiere@ehpad.example.org"):
        (msg,) = await _with_ics(smtp, email)
        assert d["number"] in msg["Subject"] and "Dupont" not in smtp.text_of(msg)
        cal = _ics(msg)
        assert cal["METHOD"] == "REQUEST"
        (ev,) = cal.walk("VEVENT")
        assert ev.decoded("dtstart") == at
        assert ev.decoded("dtend") == at + timedelta(minutes=30)
        assert ev["UID"] == f"teleconsultation-{tc['id']}@consilium"
        assert str(tc["room_id"]) in str(ev["URL"])
        attendees = {str(a).lower() for a in ev["ATTENDEE"]}
        assert "mailto:infirmiere@ehpad.example.org" in attendees
    # The dossier shows its room, planned, nobody inside yet.
    rooms = await (await req.get(f"/api/v1/dossiers/{d['id']}/rooms")).json()
    assert [r["id"] for r in rooms] == [tc["room_id"]]
    assert rooms[0]["label"].startswith("Salle prévue le ") and rooms[0]["count"] == 0
    # The expert (a host) and the nurse (a participant) may enter the room.
    nurse_c = await as_user(tc["nurse_user"])
    r = await nurse_c.get(f"/api/v1/rooms/{tc['room_id']}")
    assert r.status == 200 and (await r.json())["my_role"] == "participant"
    # The activity view shows and filters on the step.
    page = await (await req.get("/api/v1/dossiers?teleconsultation=planned")).json()
    row = next(x for x in page["items"] if x["id"] == d["id"])
    assert row["teleconsultation_step_label"] == "Téléconsultation planifiée"
    page = await (await req.get("/api/v1/dossiers?teleconsultation=done")).json()
    assert all(x["id"] != d["id"] for x in page["items"])
    # Audited with the dossier.
    hist = await (await req.get(f"/api/v1/dossiers/{d['id']}/history")).json()
    assert "dossier.teleconsultation.planned" in {h["action"] for h in hist}


async def test_reminders_go_the_day_before_and_a_quarter_hour_before_once(
    demo, as_user, app, smtp, sms_gateway
):
    at = (utcnow() + timedelta(days=2)).replace(second=0, microsecond=0)
    await _plan(demo, as_user, app, at)
    await smtp.wait_for(PATIENT_EMAIL)
    assert await send_due_reminders(app, now=at - timedelta(days=1, minutes=1)) == 0
    assert await send_due_reminders(app, now=at - timedelta(days=1)) == 1
    msgs = await smtp.wait_for(PATIENT_EMAIL, count=2)
    assert "Rappel" in msgs[-1]["Subject"] and "demain" in msgs[-1]["Subject"]
    assert "/join/" in smtp.text_of(msgs[-1])
    # Not twice, even when asked again (another node, a restart).
    assert await send_due_reminders(app, now=at - timedelta(hours=1)) == 0
    assert await send_due_reminders(app, now=at - timedelta(minutes=15)) == 1
    msgs = await smtp.wait_for(PATIENT_EMAIL, count=3)
    assert "dans 15 minutes" in msgs[-1]["Subject"]
    assert await send_due_reminders(app, now=at) == 0
    async with app[DB].read() as s:
        rows = (await s.execute(select(TeleconsultationReminder))).scalars().all()
    assert all(r.sent_at is not None for r in rows) and len(rows) == 2


async def test_rescheduling_and_cancelling_tell_everyone(demo, as_user, app, smtp, sms_gateway):
    at = (utcnow() + timedelta(days=3)).replace(second=0, microsecond=0)
    req, d, tc = await _plan(demo, as_user, app, at)
    await smtp.wait_for(PATIENT_EMAIL)
    await _with_ics(smtp, "expert@demo.consilium.fr")
    later = at + timedelta(days=1, hours=2)
    r = await req.post(
        f"/api/v1/teleconsultations/{tc['id']}/reschedule",
        json={"scheduled_at": later.isoformat()},
    )
    assert r.status == 200, await r.text()
    assert datetime.fromisoformat((await r.json())["scheduled_at"]) == later
    patient = await smtp.wait_for(PATIENT_EMAIL, count=2)
    assert "/join/" in smtp.text_of(patient[-1])
    old_link = smtp.text_of(patient[0]).split("/join/")[1].split()[0]
    r = await req.client.get(f"/join/{old_link}")
    assert r.status == 410  # the first link was revoked
    (_, moved) = await _with_ics(smtp, "expert@demo.consilium.fr", count=2)
    assert "déplacée" in moved["Subject"]
    (ev,) = _ics(moved).walk("VEVENT")
    assert ev.decoded("dtstart") == later and int(ev["SEQUENCE"]) == 1
    r = await req.post(
        f"/api/v1/teleconsultations/{tc['id']}/cancel", json={"reason": "Hospitalisation"}
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["step_label"] == "Téléconsultation annulée"
    patient = await smtp.wait_for(PATIENT_EMAIL, count=3)
    assert "annulée" in patient[-1]["Subject"]
    await sms_gateway.wait_for(RELATIVE_MOBILE)
    (_, _, cancelled) = await _with_ics(smtp, "infirmiere@ehpad.example.org", count=3)
    cal = _ics(cancelled)
    assert cal["METHOD"] == "CANCEL"
    # The room is closed and no longer listed on the dossier.
    assert await (await req.get(f"/api/v1/dossiers/{d['id']}/rooms")).json() == []
    r = await req.post(f"/api/v1/teleconsultations/{tc['id']}/cancel", json={})
    assert r.status == 409


async def test_bad_plans_are_refused_and_strangers_see_nothing(demo, as_user, app):
    u = demo["users"]
    req = await as_user(u["requester"])
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    past = datetime(2020, 1, 1, 10, 0, tzinfo=UTC).isoformat()
    r = await req.post(f"/api/v1/dossiers/{d['id']}/teleconsultations", json={"scheduled_at": past})
    assert r.status == 422 and (await r.json())["code"] == "invalid_schedule"
    far = datetime(9999, 12, 31, 23, 0, tzinfo=UTC).isoformat()
    r = await req.post(f"/api/v1/dossiers/{d['id']}/teleconsultations", json={"scheduled_at": far})
    assert r.status == 422 and (await r.json())["code"] == "invalid_schedule"
    future = (utcnow() + timedelta(days=1)).isoformat()
    r = await req.post(
        f"/api/v1/dossiers/{d['id']}/teleconsultations",
        json={"scheduled_at": future, "guests": [{"name": "X"}]},
    )
    assert r.status == 422
    stranger = await as_user(demo["everyone"][CARDIO_EMAIL])
    r = await stranger.post(
        f"/api/v1/dossiers/{d['id']}/teleconsultations", json={"scheduled_at": future}
    )
    assert r.status == 404
    r = await stranger.get(f"/api/v1/dossiers/{d['id']}/rooms")
    assert r.status == 404


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_dossier_page_shows_who_is_in_the_room(demo, as_user, app):
    at = (utcnow() + timedelta(hours=2)).replace(second=0, microsecond=0)
    req, d, tc = await _plan(demo, as_user, app, at)
    exp = await as_user(demo["users"]["expert"])
    sock = await open_socket(exp)
    try:
        await sock.ok("room:join", {"room_id": tc["room_id"]})
        rooms = await (await req.get(f"/api/v1/dossiers/{d['id']}/rooms")).json()
        assert rooms[0]["count"] == 1
        assert rooms[0]["occupants"] == [{"name": "Dr Karim Benali", "kind": "user"}]
        assert rooms[0]["teleconsultation_id"] == tc["id"]
    finally:
        await sock.close()
    # Planned two hours ahead: only the quarter-hour reminder is still to come.
    async with app[DB].read() as s:
        kinds = [r.kind for r in (await s.execute(select(TeleconsultationReminder))).scalars()]
    assert kinds == ["quarter_hour"]
    r = await req.post(f"/api/v1/teleconsultations/{tc['id']}/done")
    assert r.status == 200 and (await r.json())["step_label"] == "Téléconsultation réalisée"
    page = await (await req.get("/api/v1/dossiers?teleconsultation=done")).json()
    assert [x["id"] for x in page["items"]] == [d["id"]]


async def test_two_reminder_runs_at_once_send_each_reminder_once(demo, as_user, app, smtp):
    """Two nodes (or two overlapping runs) at the same minute: the cluster lock lets one run
    on PostgreSQL; on SQLite both run and the claim on ``sent_at`` keeps it to one."""
    at = (utcnow() + timedelta(days=2)).replace(second=0, microsecond=0)
    await _plan(demo, as_user, app, at)
    await smtp.wait_for(PATIENT_EMAIL)
    # Both are due (a server down for the night): only « dans 15 minutes » goes.
    now = at - timedelta(minutes=10)
    results = await asyncio.gather(*(send_due_reminders(app, now=now) for _ in range(3)))
    assert sum(results) == 1
    msgs = await smtp.wait_for(PATIENT_EMAIL, count=2)
    assert "dans 15 minutes" in msgs[-1]["Subject"]
    assert await send_due_reminders(app, now=now) == 0
    assert len(smtp.to(PATIENT_EMAIL)) == 2


async def test_a_secretary_plans_for_her_practitioner(demo, as_user, app, smtp):
    u = demo["users"]
    req = await as_user(u["requester"])
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    sec = await as_user(u["secretary"])
    at = (utcnow() + timedelta(days=1, hours=3)).isoformat()
    r = await sec.post(
        f"/api/v1/dossiers/{d['id']}/teleconsultations",
        json={
            "scheduled_at": at,
            "practitioner_ids": [str(u["requester"].id)],
            "guests": [{"name": "Élise Dupont", "email": PATIENT_EMAIL}],
        },
    )
    assert r.status == 201, await r.text()
    tc = await r.json()
    room = await (await req.get(f"/api/v1/rooms/{tc['room_id']}")).json()
    assert room["owner_id"] == str(u["requester"].id) and room["my_role"] == "host"
    (inv,) = await smtp.wait_for(PATIENT_EMAIL)
    assert "/join/" in smtp.text_of(inv)


async def test_two_cancellations_at_once_tell_everyone_once(demo, as_user, app, smtp):
    at = (utcnow() + timedelta(days=3)).replace(second=0, microsecond=0)
    req, _, tc = await _plan(demo, as_user, app, at)
    await smtp.wait_for(PATIENT_EMAIL)
    other_tab = await as_user(demo["users"]["requester"])
    rs = await asyncio.gather(
        req.post(f"/api/v1/teleconsultations/{tc['id']}/cancel", json={}),
        other_tab.post(f"/api/v1/teleconsultations/{tc['id']}/cancel", json={}),
    )
    assert sorted(r.status for r in rs) == [200, 409]
    await smtp.wait_for(PATIENT_EMAIL, count=2)
    cancelled = [m for m in smtp.to(PATIENT_EMAIL) if "annulée" in m["Subject"]]
    assert len(cancelled) == 1
