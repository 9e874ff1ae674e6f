"""Launch from the hospital record (DPI), seed 003: the DPI opens Consilium with the patient
and the user in context, without a second sign-in, through a **signed launch token**.

The DPI mints a short-lived JWT (HS256) with its Consilium API key (:mod:`ops.tokens`)::

    {"iss": "CK…", "sub": "dpi-user-42", "iat": …, "exp": … (≤ 5 min), "jti": "…",
     "grants": {"launch": true},
     "user": {"rpps": "10003456789"},           # optional: the key's own account otherwise
     "patient": { …FHIR R4 Patient, FR Core, IPP and INS identifiers… }}

and sends the browser to ``GET /launch?token=…``. Consilium checks the signature, expiry,
grant and that the token was never used, validates the ``Patient`` with fhir.resources,
finds the identity by IPP or INS (or creates it through the identity write path, with its
duplicate check), opens a session for the practitioner and lands on the new-request wizard
pre-filled with that patient. Why a signed token rather than the SMART EHR launch:
docs/integration.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from aiohttp import web
from fhir.resources.R4B.patient import Patient as FhirPatient
from pydantic import ValidationError
from sqlalchemy import select

from core import audit, auth
from core.accounts import User
from core.config import Settings
from core.context import DB, SETTINGS
from core.db import Database
from core.errors import Conflict, Problem
from core.principal import Principal
from dossier.identity.patients import create_patient
from dossier.models import Patient, Sex
from dossier.permissions import visible_patients
from ops import apikeys, tokens
from ops.fhir.resources import INS_SYSTEMS

MAX_TTL = 300  # a launch token is used at once: 5 minutes at most
GENDER = {"female": Sex.female, "male": Sex.male}


class LaunchRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def identity_of(resource: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A FHIR Patient (validated) as the fields of Consilium's identity form."""
    try:
        p = FhirPatient.model_validate(resource)
    except ValidationError as e:
        raise LaunchRefused(400, f"Invalid FHIR Patient: {e.errors()[0]['msg']}") from None
    official = next((n for n in p.name or [] if n.use == "official"), None)
    official = official or (p.name[0] if p.name else None)
    if official is None or not official.family or not official.given:
        raise LaunchRefused(400, "The Patient needs an official name (family and given)")
    if p.birthDate is None:
        raise LaunchRefused(400, "The Patient needs a birth date")
    usual = next((n for n in p.name or [] if n.use == "usual"), None)
    data: dict[str, Any] = {
        "birth_name": official.family,
        "first_name": official.given[0],
        "first_names": " ".join(g for g in official.given if g),
        "used_name": usual.family if usual and usual.family != official.family else "",
        "used_first_name": "",
        "sex": GENDER.get(str(p.gender or ""), Sex.unknown),
        "birth_date": p.birthDate
        if isinstance(p.birthDate, dt.date)
        else dt.date.fromisoformat(str(p.birthDate)),
        "birth_country": "FRANCE",
        "birth_commune": "",
        "birth_postcode": "",
        "birth_insee_code": "",
        "addresses": [],
        "contacts": [],
        "ipp": None,
        "ins": None,
        "ins_oid": None,
        "ins_status": "provisional",  # the DPI's status is not known here: checked again
    }
    for ident in p.identifier or []:
        if ident.system == settings.fhir_ipp_system and ident.value:
            data["ipp"] = ident.value
        elif ident.system in INS_SYSTEMS and ident.value:
            data["ins"], data["ins_oid"] = ident.value, INS_SYSTEMS[ident.system]
    if not data["ipp"] and not data["ins"]:
        raise LaunchRefused(400, "The Patient needs its IPP or INS identifier")
    return data


async def _find(db: Database, principal: Principal, data: dict[str, Any]) -> Patient | None:
    clauses = []
    if data["ipp"]:
        clauses.append(Patient.ipp == data["ipp"])
    if data["ins"]:
        clauses.append(Patient.ins == data["ins"])
    async with db.read() as s:
        for clause in clauses:
            found = (
                await s.execute(select(Patient).where(clause, visible_patients(principal)))
            ).scalar_one_or_none()
            if found is not None:
                return found
    return None


async def launch(request: web.Request) -> web.StreamResponse:
    db, settings = request.app[DB], request.app[SETTINGS]
    ip = auth.client_ip(request)
    try:
        token = request.query.get("token", "")
        if not token:
            raise LaunchRefused(400, "Missing token")
        try:
            access = await tokens.verify(db, settings, token, ip=ip)
        except Problem as e:
            raise LaunchRefused(e.status, e.detail or "Invalid launch token") from None
        if not access.grants.launch:
            await apikeys.refuse(
                db, "grant_missing", "no launch grant", ip=ip, key_id=access.key.id, status=403
            )
            raise LaunchRefused(403, "This token does not grant launch")
        if access.exp - int(dt.datetime.now(dt.UTC).timestamp()) > MAX_TTL:
            raise LaunchRefused(400, f"A launch token lives {MAX_TTL} s at most")
        if not await tokens.consume(db, access):
            await apikeys.refuse(
                db, "token_replayed", "launch token replayed", ip=ip, key_id=access.key.id
            )
            raise LaunchRefused(401, "This launch token was already used")
        user = await _practitioner(db, access.user, access.claims.get("user"))
        principal = Principal.for_user(user, ip=ip)
        data = identity_of(access.claims.get("patient") or {}, settings)
        patient = await _find(db, principal, data)
        target = "/app/dossiers/new"
        if patient is None:
            try:
                patient = await create_patient(db, principal, data)
            except Conflict as e:  # look-alikes: the practitioner decides in the wizard
                if e.code != "similar_identities":
                    raise LaunchRefused(409, e.detail or "Identity conflict") from None
                target += "?q=" + quote(f"{data['birth_name']} {data['first_name']}")
        if patient is not None:
            target += f"?patient={patient.id}"
        await audit.record_now(
            db,
            "launch.accepted",
            actor=principal,
            object_type="launch",
            object_id=access.token_id,
            key_id=access.key.id,
            patient_id=str(patient.id) if patient else None,
        )
    except LaunchRefused as e:
        return web.Response(
            status=e.status,
            text=f"Ouverture depuis le DPI refusée : {e.message}",
            content_type="text/plain",
            charset="utf-8",
        )
    response = web.HTTPSeeOther(target)
    await auth.start_session(
        request, response, kind="user", subject_id=user.id, stage="full", data={"via": "launch"}
    )
    raise response


async def _practitioner(db: Database, key_user: User, claim: Any) -> User:
    """The token's practitioner (by RPPS), of the key's establishment; else the key's own
    account. A DPI key speaks for its establishment only."""
    if not isinstance(claim, dict) or not claim.get("rpps"):
        return key_user
    async with db.read() as s:
        user = (
            await s.execute(select(User).where(User.rpps == str(claim["rpps"])))
        ).scalar_one_or_none()
    if user is None or not user.active:
        raise LaunchRefused(403, "No active Consilium account with this RPPS")
    if user.id != key_user.id and user.establishment != key_user.establishment:
        raise LaunchRefused(403, "This practitioner is not of the key's establishment")
    return user


def setup(app: web.Application) -> None:
    app.router.add_get("/launch", launch)
