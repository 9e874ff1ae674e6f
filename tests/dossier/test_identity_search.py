"""Identity search picks its candidates in the database: the answers are those of scoring
every visible identity in Python (the former search), on SQLite and PostgreSQL, and on
PostgreSQL the trigram index serves the search."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from core.context import DB
from core.principal import Principal
from dossier.identity.patients import (
    SHOW_FROM,
    SIMILAR_FROM,
    Criteria,
    _prefilter,
    match_rate,
    search,
    search_text_of,
)
from dossier.models import Patient, Sex
from dossier.permissions import visible_patients

PG = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

SURNAMES = [
    "LEFÈVRE",
    "LEFEBVRE",
    "MARTIN",
    "MARTINEZ",
    "DUPONT",
    "DUPOND",
    "BERNARD",
    "VAUTRIN",
    "D'ALMEIDA",
    "PHILIPPE",
    "GUÉRIN",
    "LE GALL",
    "MÜLLER",
    "FRANÇOIS",
    "NOËL",
]
FIRST = [
    ("Anaïs", Sex.female),
    ("Lucie", Sex.female),
    ("Lucy", Sex.female),
    ("Hélène", Sex.female),
    ("Odile", Sex.female),
    ("Élise", Sex.female),
    ("Jérôme", Sex.male),
    ("Philippe", Sex.male),
    ("Filipe", Sex.male),
    ("Rémi", Sex.male),
    ("Rémy", Sex.male),
    ("Bernard", Sex.male),
]
QUERIES = [
    Criteria(text="lefevre anais"),
    Criteria(text="ANAIS Lefevre"),
    Criteria(text="lef"),
    Criteria(text="lefebvre anais"),
    Criteria(text="lefevre", birth_date=date(1970, 3, 4)),
    Criteria(text="durand pierre"),
    Criteria(text="vautrin"),
    Criteria(text="Dupon Elise"),
    Criteria(text="philipe lucy"),
    Criteria(text="remy muller"),
    Criteria(text="bernard martin"),
    Criteria(text="almeida"),
    Criteria(text="le gall helene", birth_date=date(1970, 4, 3)),
    Criteria(birth_date=date(1970, 4, 3)),
    Criteria(text="guerin jerome"),
    Criteria(text="noel francois"),
]


def identities(n: int, creator: uuid.UUID) -> list[Patient]:
    rng = random.Random(7)
    out = []
    for _ in range(n):
        first, sex = rng.choice(FIRST)
        p = Patient(
            id=uuid.uuid4(),
            birth_name=rng.choice(SURNAMES),
            used_name=rng.choice(SURNAMES) if rng.random() < 0.2 else "",
            first_name=first,
            first_names=" ".join(dict.fromkeys([first, rng.choice(FIRST)[0]])),
            used_first_name="",
            sex=sex,
            birth_date=date(1970, 4, 3) + timedelta(days=rng.randrange(-40, 40)),
            created_by_id=creator,
        )
        p.search_text = search_text_of(p)
        out.append(p)
    return out


Hit = tuple[float, str, str]  # rate, birth name, first name: what orders the answers


def hits(found: list[tuple[Patient, float]]) -> list[Hit]:
    # Identities of equal rate and names come in the database's order (and the 25th may be
    # any of them): compare what the order is defined on.
    return [(r, p.birth_name, p.first_name) for p, r in found]


async def former_search(db, principal: Principal, c: Criteria) -> list[Hit]:
    """The search before the database picked the candidates: every visible identity."""
    async with db.read() as s:
        rows = (await s.execute(select(Patient).where(visible_patients(principal)))).scalars()
        found = [(p, match_rate(p, c)) for p in rows]
    found = [(p, r) for p, r in found if r >= SHOW_FROM]
    found.sort(key=lambda pr: (-pr[1], pr[0].birth_name, pr[0].first_name))
    return hits(found[:25])


async def seed(app, users, n: int) -> Principal:
    requester = users["requester"]
    async with app[DB].write() as uow:
        uow.session.add_all(identities(n, requester.id))
    return Principal.for_user(requester)


async def test_search_answers_as_the_former_search(app, users, backend):
    p = await seed(app, users, 300)
    admin = Principal.for_user(users["admin"])
    for who in (p, admin):
        for c in QUERIES:
            async with app[DB].read() as s:
                now = hits(await search(s, who, c))
            before = await former_search(app[DB], who, c)
            if backend == "postgresql":
                # Every typed word must find a trigram match there: the weak tail (a rate
                # under the look-alike threshold, one word matching and the other not) may
                # differ; the look-alikes and their order do not.
                now = [h for h in now if h[0] >= SIMILAR_FROM]
                before = [h for h in before if h[0] >= SIMILAR_FROM]
            assert now == before, c


async def test_search_stays_within_what_the_user_may_see(app, users):
    await seed(app, users, 50)
    outsider = Principal.for_user(users["expert"])
    async with app[DB].read() as s:
        assert await search(s, outsider, Criteria(text="lefevre anais")) == []


@PG
async def test_postgresql_search_uses_the_trigram_index(app, users):
    # A few thousand identities with names of all sorts, a handful answering the query.
    p = await seed(app, users, 10)
    rng = random.Random(3)
    many = identities(3000, users["requester"].id)
    for pt in many:
        pt.birth_name = "".join(rng.choices("bcdfghjklmnpqrstvwxz", k=3)).upper() + "AUD"
        pt.first_name = pt.first_names = "".join(rng.choices("aeiouy", k=2)) + "line"
        pt.search_text = search_text_of(pt)
    async with app[DB].write() as uow:
        uow.session.add_all(many)
    async with app[DB].write() as uow:
        await uow.session.execute(text("ANALYZE patients"))
    c = Criteria(text="lefevre anais")
    async with app[DB].read() as s:
        stmt = _prefilter("postgresql", select(Patient.id).where(visible_patients(p)), c)
        sql = stmt.compile(dialect=s.get_bind().dialect, compile_kwargs={"literal_binds": True})
        # At this size a sequential scan costs less; what matters is that the index can
        # serve the query (operator, operator class and column agree), as the planner
        # chooses it on a region's table (loadtest/identity_search.py).
        await s.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(r[0] for r in (await s.execute(text(f"EXPLAIN {sql}"))).all())
    assert "Bitmap Index Scan on ix_patients_search_text_trgm" in plan, plan
