"""The .ics calendar entry professionals get for a planned call (téléconsultation, RCP).

One UID for the whole life of the appointment, SEQUENCE raised by each change, METHOD:CANCEL
when it is called off, so calendars update the entry instead of adding one (RFC 5546).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import icalendar

from core.accounts import User
from core.db import utcnow


def calendar_entry(
    *,
    prodid: str,
    uid: str,
    start: datetime,
    minutes: int,
    sequence: int,
    summary: str,
    description: str,
    location: str,
    url: str,
    organizer: User | None,
    attendees: list[User],
    cancel: bool,
) -> bytes:
    cal = icalendar.Calendar()
    cal.add("prodid", prodid)
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancel else "REQUEST")
    ev = icalendar.Event()
    ev.add("uid", uid)
    ev.add("dtstamp", utcnow())
    ev.add("dtstart", start)
    ev.add("dtend", start + timedelta(minutes=minutes))
    ev.add("sequence", sequence)
    ev.add("summary", summary)
    ev.add("description", description)
    ev.add("location", location)
    ev.add("url", url)
    ev.add("status", "CANCELLED" if cancel else "CONFIRMED")
    if organizer is not None:
        org = icalendar.vCalAddress(f"mailto:{organizer.email}")
        org.params["cn"] = icalendar.vText(organizer.display_name)
        ev.add("organizer", org)
    for u in attendees:
        att = icalendar.vCalAddress(f"mailto:{u.email}")
        att.params["cn"] = icalendar.vText(u.display_name)
        att.params["role"] = icalendar.vText("REQ-PARTICIPANT")
        ev.add("attendee", att, encode=False)
    cal.add_component(ev)
    return bytes(cal.to_ical())
