"""Dates and times as people in France read them: Europe/Paris, day first.

The API speaks UTC (ISO 8601); what the server writes for people (invitations, the report,
the read receipt's label, the vault's e-mail and page, the retention reminder) goes through
here, whatever the server's locale and time zone.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


def paris_date(at: datetime | date) -> str:
    """``22/11/2026``; a datetime is first put in Paris time (00:30 there is the next day)."""
    day = at.astimezone(PARIS) if isinstance(at, datetime) else at
    return f"{day:%d/%m/%Y}"


def paris_datetime(at: datetime | None, *, clock: str = ":") -> str:
    """``22/11/2026 à 21:34`` in Paris time (``clock="h"``: ``21h34``); ``—`` for none."""
    if at is None:
        return "—"
    local = at.astimezone(PARIS)
    return f"{local:%d/%m/%Y} à {local:%H}{clock}{local:%M}"


_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


def paris_spelled_out(at: datetime) -> str:
    """``jeudi 26 novembre 2026 à 14 h 30`` in Paris time (invitations, reminders)."""
    t = at.astimezone(PARIS)
    day = "1er" if t.day == 1 else str(t.day)
    return f"{_DAYS[t.weekday()]} {day} {_MONTHS[t.month - 1]} {t.year} à {t.hour} h {t.minute:02d}"
