"""Patient identity (identitovigilance): tolerant search with a match rate, creation that
warns about look-alike identities before writing, and correction.

The INS matricule, its OID and the status rules live in :mod:`dossier.identity.ins`; the
status changes in :mod:`dossier.identity.status`.
"""

from __future__ import annotations

import contextlib
import functools
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, TypeVar

from rapidfuzz import fuzz
from sqlalchemy import ColumnElement, Select, and_, case, false, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import User
from core.db import Database
from core.errors import Conflict, NotFound, ValidationFailed
from core.principal import Principal
from dossier import communes
from dossier.identity.ins import InsOid, ins_key, ins_with_key, validate_ins
from dossier.identity.schemas import PatientOut
from dossier.identity.status import Evidence, apply_status, check_evidence, holding_patient
from dossier.models import InsStatus, Patient, Sex
from dossier.permissions import identity_holders, visible_patients

__all__ = ["ins_key", "ins_with_key", "validate_ins"]  # re-exported for older callers

_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])

# A candidate below this rate is not shown; at or above this one it counts as a look-alike.
SHOW_FROM = 70.0
SIMILAR_FROM = 85.0


# -- text normalisation and matching ---------------------------------------------------


def fold_for_matching(text: str) -> str:
    """A name or keyword as matching compares it: lower case, no accents, punctuation turned
    into spaces ("Lefèvre-d'Aubigné" → "lefevre d aubigne"), so that "d'Aubigné" and
    "D AUBIGNE" meet. Not for display."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_ = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^a-z0-9]+", " ", ascii_.lower()).split())


def search_text_of(p: Scored) -> str:
    parts = [p.birth_name, p.used_name, p.first_name, p.first_names, p.used_first_name]
    return " ".join(dict.fromkeys(fold_for_matching(" ".join(parts)).split()))


@dataclass
class Criteria:
    text: str = ""  # names, in any order
    birth_date: date | None = None
    ins: str = ""
    ipp: str = ""
    sex: Sex | None = None


_SOUNDS = (
    ("eau", "o"),
    ("au", "o"),
    ("ph", "f"),
    ("th", "t"),
    ("ck", "k"),
    ("qu", "k"),
    ("ai", "e"),
    ("ei", "e"),
    ("y", "i"),
    ("z", "s"),
    ("w", "v"),
)


@functools.lru_cache(maxsize=65536)
def sound(word: str) -> str:
    """A rough French sound key: Lucy ~ Lucie, Bernart ~ Bernard, Philippe ~ Filipe."""
    for a, b in _SOUNDS:
        word = word.replace(a, b)
    word = re.sub(r"c(?=[aou])", "k", word)
    word = re.sub(r"(.)\1+", r"\1", word)
    while len(word) > 3 and word[-1] in "estdx":
        word = word[:-1]
    return word


def _token_score(q: str, candidates: list[str]) -> float:
    best = 0.0
    for c in candidates:
        if c == q:
            return 100.0
        if sound(c) == sound(q):
            best = max(best, 95.0)  # sounds the same, spelled otherwise
            continue
        if len(q) >= 2 and c.startswith(q):  # typing the start of a name is a full match
            score = 100.0
        else:
            score = fuzz.ratio(q, c)
            if len(q) >= 3 and len(c) > len(q):  # "dupon" vs "dupont", "mart" vs "martin"
                score = max(score, fuzz.ratio(q, c[: len(q) + 1]) - 5)
        best = max(best, score)
    return best


class Scored(Protocol):
    """What :func:`match_rate` reads of an identity: a :class:`Patient`, or a row of the
    search's light query (the names, birth date, sex and identifiers only)."""

    @property
    def birth_name(self) -> str: ...
    @property
    def used_name(self) -> str: ...
    @property
    def first_name(self) -> str: ...
    @property
    def first_names(self) -> str: ...
    @property
    def used_first_name(self) -> str: ...
    @property
    def birth_date(self) -> date: ...
    @property
    def sex(self) -> Sex: ...
    @property
    def ins(self) -> str | None: ...
    @property
    def ipp(self) -> str | None: ...
    @property
    def search_text(self) -> str: ...


def match_rate(p: Scored, c: Criteria) -> float:
    """How well an identity answers the criteria, 0–100 ("Taux de corresp.")."""
    scores: list[float] = []
    if c.ins:
        if (p.ins or "") != c.ins:
            return 0.0
        scores.append(100.0)
    if c.ipp:
        if (p.ipp or "") != c.ipp:
            return 0.0
        scores.append(100.0)
    if c.text:
        tokens = (p.search_text or search_text_of(p)).split()
        q = fold_for_matching(c.text).split()
        if q:
            scores.append(sum(_token_score(t, tokens) for t in q) / len(q))
    if c.birth_date is not None:
        if p.birth_date == c.birth_date:
            scores.append(100.0)
        elif (p.birth_date.day, p.birth_date.month) == (c.birth_date.month, c.birth_date.day):
            scores.append(80.0)  # day and month swapped, a classic entry error
        else:
            scores.append(fuzz.ratio(p.birth_date.isoformat(), c.birth_date.isoformat()) * 0.8)
    if c.sex is not None and c.sex is not Sex.unknown and p.sex is not Sex.unknown:
        scores.append(100.0 if p.sex is c.sex else 50.0)
    if not scores:
        return 0.0
    return round(min(scores) * 0.5 + sum(scores) / len(scores) * 0.5, 2)


async def search_patients(
    db: Database, principal: Principal, c: Criteria, criteria: list[str]
) -> list[tuple[Patient, float]]:
    """The search of the patients page: :func:`search`, audited with the criteria used
    (their names, not their values) and the number of results."""
    async with db.write() as uow:
        hits = await search(uow.session, principal, c)
        audit.record(
            uow.session,
            "patient.search",
            actor=principal,
            object_type="patient",
            criteria=criteria,
            results=len(hits),
        )
    return hits


async def held_by(db: Database, principal: Principal, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these identities the principal holds (the requester side): the others are
    shown as they leave their holders, with their INS only when qualified."""
    if not ids:
        return set()
    async with db.read() as s:
        rows = await s.execute(
            select(Patient.id).where(Patient.id.in_(ids), identity_holders(principal))
        )
        return set(rows.scalars().all())


async def read_patient(db: Database, principal: Principal, patient_id: uuid.UUID) -> Patient:
    """An identity card ("Fiche d'identité"), if the principal may see it; the reading is
    audited."""
    async with db.write() as uow:
        pt = (
            await uow.session.execute(
                select(Patient).where(Patient.id == patient_id, visible_patients(principal))
            )
        ).scalar_one_or_none()
        if pt is None:
            raise NotFound("No patient with this id", code="patient_not_found")
        audit.record(
            uow.session,
            "patient.read",
            actor=principal,
            object_type="patient",
            object_id=patient_id,
        )
    return pt


# At most this many candidates, best first by the database's own ranking, are scored in
# Python on PostgreSQL.
CANDIDATES = 500
# pg_trgm's word similarity a typed word needs with some part of an identity's names to make
# it a candidate: low enough for a typo or a swap inside a name ("matrin" ~ "martin" 0.43).
WORD_SIMILARITY = 0.3


def _near_dates(d: date) -> list[date]:
    """The birth dates :func:`match_rate` finds close enough to ``d`` to show an identity on
    its birth date alone: ``d``, its day and month swapped, and the dates whose ISO form is
    one character away by ``fuzz.ratio`` (one digit changed or moved: ratio 90, 72 once
    weighted)."""
    out = [d]
    with contextlib.suppress(ValueError):
        out.append(d.replace(day=d.month, month=d.day))
    iso = d.isoformat()
    near = set()
    for i in range(len(iso)):
        rest = iso[:i] + iso[i + 1 :]
        for j in range(len(rest) + 1):
            for ch in "0123456789-":
                near.add(rest[:j] + ch + rest[j:])
    for text in sorted(near):
        if text != iso and fuzz.ratio(iso, text) * 0.8 >= SHOW_FROM:
            with contextlib.suppress(ValueError):
                out.append(date.fromisoformat(text))
    return list(dict.fromkeys(out))


def _trigrams(word: str) -> list[str]:
    return [word[i : i + 3] for i in range(len(word) - 2)]


def _prefilter(dialect: str, stmt: _S, c: Criteria) -> _S:
    """Narrow ``stmt`` to the identities that can reach :data:`SHOW_FROM`, in the database.

    A candidate has a birth date close to the one asked for (:func:`_near_dates`), or names
    that share enough with a typed word. On PostgreSQL: pg_trgm's word similarity
    (``search_text %> word``, served by the GIN index ``ix_patients_search_text_trgm``),
    the best :data:`CANDIDATES` by date then similarity. On SQLite: one three-letter piece
    of a typed word (the start of a name for a shorter word), with no limit.
    :func:`match_rate` then scores the candidates as before."""
    words = list(dict.fromkeys(fold_for_matching(c.text).split())) if c.text else []
    if not words and c.birth_date is None:
        return stmt  # a search on the sex alone: every visible identity, as before
    dates = _near_dates(c.birth_date) if c.birth_date else []
    on_date = Patient.birth_date.in_(dates) if dates else false()
    if dialect == "postgresql":
        # A three-letter word (often the start of a name) would match by word similarity
        # any name sharing its first two letters ("mar" ~ "michel" 0.5), at a high cost
        # in rechecks: its letters must appear in order instead ("den" in "delon", which
        # match_rate scores 75), a cheap filter on the rows the other words pick.
        named = [
            Patient.search_text.like("%" + "%".join(w) + "%")
            if len(w) == 3
            else Patient.search_text.op("%>")(w)
            for w in words
        ]
        rank: ColumnElement[float] = literal(1.0)
        if dates:
            rank = case((Patient.birth_date == dates[0], 3.0), (on_date, 2.0), else_=1.0)
        for w in words:  # each typed word counts, as in match_rate's mean
            rank = rank + func.word_similarity(w, Patient.search_text)
        # Every typed word must find its match (a common surname alone would otherwise
        # bring a region's tenth): the index intersects the words' bitmaps.
        named_all = and_(*named) if named else false()
        return stmt.where(or_(on_date, named_all)).order_by(rank.desc()).limit(CANDIDATES)
    pieces: list[ColumnElement[bool]] = []
    for w in words:
        if len(w) < 3:
            pieces.append(
                or_(Patient.search_text.startswith(w), Patient.search_text.contains(" " + w))
            )
        else:
            pieces.extend(Patient.search_text.contains(t) for t in _trigrams(w))
    return stmt.where(or_(on_date, *pieces))


SCORED_COLUMNS = (
    Patient.id,
    Patient.birth_name,
    Patient.used_name,
    Patient.first_name,
    Patient.first_names,
    Patient.used_first_name,
    Patient.birth_date,
    Patient.sex,
    Patient.ins,
    Patient.ipp,
    Patient.search_text,
)


async def search(
    session: AsyncSession, principal: Principal, c: Criteria, *, limit: int = 25
) -> list[tuple[Patient, float]]:
    """Identities the principal may see, best match first: the database picks the
    candidates (:func:`_prefilter`) among the visible ones, :func:`match_rate` ranks them."""
    stmt = select(*SCORED_COLUMNS).where(visible_patients(principal))
    if c.ins:
        stmt = stmt.where(Patient.ins == c.ins)
    if c.ipp:
        stmt = stmt.where(Patient.ipp == c.ipp)
    if not (c.ins or c.ipp):  # those two are exact filters: few rows
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            await session.execute(
                select(
                    func.set_config("pg_trgm.word_similarity_threshold", str(WORD_SIMILARITY), True)
                )
            )
        stmt = _prefilter(dialect, stmt, c)
    # Score light rows (no ORM objects for the hundreds of candidates), then load the
    # identities shown.
    rows = (await session.execute(stmt)).all()
    scored = [(p, match_rate(p, c)) for p in rows]
    found = [(p, r) for p, r in scored if r >= SHOW_FROM]
    found.sort(key=lambda pr: (-pr[1], pr[0].birth_name, pr[0].first_name))
    found = found[:limit]
    if not found:
        return []
    ids = [p.id for p, _ in found]
    loaded = (await session.execute(select(Patient).where(Patient.id.in_(ids)))).scalars().all()
    by_id = {p.id: p for p in loaded}
    return [(by_id[p.id], r) for p, r in found if p.id in by_id]


# -- creation ---------------------------------------------------------------------------


def normalise_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Trim names, upper-case the birth and used names (as the INS referential does), check
    the INS and its OID, the first names and the birth place's INSEE code."""
    out = dict(data)
    out["sex"] = Sex(out["sex"])
    for key in ("birth_name", "used_name"):
        out[key] = " ".join(str(out.get(key) or "").split()).upper()
    for key in ("first_name", "first_names", "used_first_name"):
        out[key] = " ".join(str(out.get(key) or "").split())
    if not out["birth_name"] or not out["first_name"]:
        raise ValidationFailed("Birth name and first name are required", code="identity_required")
    # INS: the list of birth first names, separated by spaces; the first of them is the
    # "premier prénom de naissance".
    if not out["first_names"]:
        out["first_names"] = out["first_name"]
    elif _words(out["first_names"])[: len(_words(out["first_name"]))] != _words(out["first_name"]):
        # (a first name of several words, « Jean Pierre », is the first words of the list)
        raise ValidationFailed(
            "The first name is the first of the birth first names",
            code="first_name_mismatch",
        )
    if out.get("ins"):
        out["ins"] = validate_ins(out["ins"], sex=out.get("sex"), birth_date=out.get("birth_date"))
        try:
            out["ins_oid"] = InsOid(out.get("ins_oid") or InsOid.nir).value
        except ValueError:
            raise ValidationFailed(
                "Unknown INS OID (NIR 1.2.250.1.213.1.4.8, NIA 1.2.250.1.213.1.4.9, "
                "test 1.2.250.1.213.1.4.10, demo 1.2.250.1.213.1.4.11)",
                code="invalid_ins_oid",
            ) from None
    else:
        out["ins"] = None
        out["ins_oid"] = None
    code = str(out.get("birth_insee_code") or "").strip().upper()
    if code:
        if not communes.is_birth_place_code(code):
            raise ValidationFailed(
                f"No French commune (nor country of birth) has the INSEE code {code}",
                code="unknown_birth_place",
            )
        place = communes.by_insee(code)
        if place is not None and not out.get("birth_commune"):
            out["birth_commune"] = place.name
    out["birth_insee_code"] = code
    if out.get("ipp") is not None:
        out["ipp"] = str(out["ipp"]).strip() or None
    return out


async def similar_identities(
    session: AsyncSession, principal: Principal, data: dict[str, Any]
) -> list[tuple[Patient, float]]:
    """Visible identities that look like the one being entered."""
    c = Criteria(
        text=" ".join(
            x for x in (data["birth_name"], data.get("used_name"), data["first_name"]) if x
        ),
        birth_date=data.get("birth_date"),
        sex=data.get("sex"),
    )
    return [(p, r) for p, r in await search(session, principal, c) if r >= SIMILAR_FROM]


async def create_patient(
    db: Database,
    principal: Principal,
    data: dict[str, Any],
    *,
    confirm: bool = False,
    evidence: Evidence | None = None,
    reason: str = "",
) -> Patient:
    """The one write path that creates an identity.

    Without ``confirm``, a 409 ``similar_identities`` lists the look-alikes (the seed's
    "L'identité en cours d'édition ressemble à une (des) identité(s) existante(s)") and
    nothing is written; the client shows them and retries with ``confirm=True``.

    The status asked for (``ins_status``, provisional by default) must rest on the
    ``evidence`` declared (an INSi call, a high-trust document): the first row of the
    identity's status history.
    """
    evidence = evidence or Evidence()
    status = InsStatus(data.get("ins_status") or InsStatus.provisional)
    fields = normalise_fields({k: v for k, v in data.items() if k != "ins_status"})
    check_evidence(fields["ins"], status, evidence.provides())
    async with db.write() as uow:
        s = uow.session
        if fields["ins"]:
            taken = await s.execute(select(Patient.id).where(Patient.ins == fields["ins"]))
            if taken.first() is not None:
                raise Conflict("An identity with this INS already exists", code="ins_exists")
        if not confirm:
            similar = await similar_identities(s, principal, fields)
            if similar:
                raise Conflict(
                    "This identity resembles existing identities; confirm to create it anyway",
                    code="similar_identities",
                    candidates=[
                        {**PatientOut.of(p).model_dump(mode="json"), "match_rate": r}
                        for p, r in similar
                    ],
                )
        establishment = ""
        if principal.is_user:
            me = await s.get(User, principal.subject_id)
            establishment = me.establishment if me else ""
        patient = Patient(
            id=uuid.uuid4(),
            created_by_id=principal.subject_id if principal.is_user else None,
            establishment=establishment,
            ins_status=status,
            **fields,
        )
        patient.search_text = search_text_of(patient)
        audit.record(
            s,
            "patient.create",
            actor=principal,
            object_type="patient",
            object_id=patient.id,
            confirmed_despite_similar=confirm,
            ins_status=status.value,
        )
        await s.flush()  # the transaction is open before the savepoint (SQLite driver)
        try:
            async with s.begin_nested():  # the same INS entered twice at once
                s.add(patient)
                await s.flush()
        except IntegrityError:
            raise Conflict("An identity with this INS already exists", code="ins_exists") from None
        apply_status(
            s,
            principal,
            patient,
            status,
            reason=reason.strip() or "Création de l'identité",
            evidence=evidence,
            initial=True,
        )
    return patient


# Traits that come from the national teleservice once an identity is qualified: they are not
# changed by hand (RNIV); used names, contacts and addresses stay editable.
QUALIFIED_TRAITS = frozenset(
    {
        "birth_name",
        "first_name",
        "first_names",
        "sex",
        "birth_date",
        "birth_insee_code",
        "ins",
        "ins_oid",
    }
)


# Traits that identify the patient (RNIV "traits stricts"): changing one needs a reason,
# kept in the audit log.
STRICT_TRAITS = frozenset(
    {
        "birth_name",
        "first_name",
        "first_names",
        "sex",
        "birth_date",
        "birth_country",
        "birth_commune",
        "birth_postcode",
        "birth_insee_code",
        "ins",
        "ins_oid",
    }
)


async def update_patient(
    db: Database,
    principal: Principal,
    patient_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    reason: str = "",
) -> Patient:
    """The one write path that corrects an identity ("Modifier"): by the requester side that
    holds it (see :func:`dossier.permissions.identity_holders`); a change of a strict trait
    needs a ``reason``, and brings a recovered or validated identity back to provisional
    (the INSi answer or the document checked no longer vouches for the new traits). The
    status itself changes through :func:`dossier.identity.status.change_status`."""
    if "ins_status" in changes:
        raise ValidationFailed(
            "The identity status changes with POST /api/v1/patients/{id}/status",
            code="status_change_route",
        )
    async with db.write() as uow:
        s = uow.session
        patient = await holding_patient(db, principal, patient_id, s, "patient.update")
        current = {
            k: getattr(patient, k)
            for k in (
                "birth_name",
                "used_name",
                "first_name",
                "first_names",
                "used_first_name",
                "sex",
                "birth_date",
                "birth_country",
                "birth_commune",
                "birth_postcode",
                "birth_insee_code",
                "addresses",
                "contacts",
                "ipp",
                "ins",
                "ins_oid",
            )
        }
        if changes.get("first_name") and "first_names" not in changes:
            # The first name is the list's first: correcting it corrects the list.
            words = (patient.first_names or "").split()
            if words and fold_for_matching(words[0]) == fold_for_matching(patient.first_name):
                changes = {**changes, "first_names": " ".join([changes["first_name"], *words[1:]])}
        merged = normalise_fields({**current, **changes})
        changed = sorted(k for k in changes if merged.get(k) != current.get(k))
        if patient.ins_status is InsStatus.qualified and QUALIFIED_TRAITS & set(changed):
            raise Conflict(
                "A qualified identity's traits come from the INS teleservice",
                code="identity_qualified",
                fields=sorted(QUALIFIED_TRAITS & set(changed)),
            )
        strict = sorted(STRICT_TRAITS & set(changed))
        reason = reason.strip()
        if strict and not reason:
            raise ValidationFailed(
                "Give the reason for changing the identity's traits",
                code="reason_required",
                fields=strict,
            )
        if merged["ins"] and merged["ins"] != patient.ins:
            taken = await s.execute(
                select(Patient.id).where(Patient.ins == merged["ins"], Patient.id != patient.id)
            )
            if taken.first() is not None:
                raise Conflict("An identity with this INS already exists", code="ins_exists")
        for k in changed:
            setattr(patient, k, merged[k])
        patient.search_text = search_text_of(patient)
        demoted = strict and patient.ins_status in (InsStatus.recovered, InsStatus.validated)
        if demoted:
            apply_status(
                s,
                principal,
                patient,
                InsStatus.provisional,
                reason=f"Traits stricts modifiés ({', '.join(strict)}) : {reason}",
                evidence=Evidence(),
            )
        audit.record(
            s,
            "patient.update",
            actor=principal,
            object_type="patient",
            object_id=patient.id,
            fields=changed,
            **({"reason": reason} if reason else {}),
            **({"status_now": InsStatus.provisional.value} if demoted else {}),
        )
        try:
            async with s.begin_nested():
                await s.flush()
        except IntegrityError:
            raise Conflict("An identity with this INS already exists", code="ins_exists") from None
    return patient


def _words(names: str) -> list[str]:
    return [fold_for_matching(w) for w in names.split()]
