"""The FHIR R4 REST API for the hospital side, under ``/fhir/R4``: ``metadata``, read and
search of ``Patient``, ``ServiceRequest`` and ``DocumentReference``, read of ``Binary`` (the
report's PDF). JSON only (``application/fhir+json``).

Errors are FHIR ``OperationOutcome`` resources with a 4xx status, never a problem+json:
an unknown resource type or search parameter, a malformed reference or token, a resource
that is not there (or not visible, the same 404), a missing or wrong credential.

Handlers translate; the audited reads live in :mod:`ops.fhir.reads`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiMapping

from core import auth
from core.context import DB, SETTINGS
from core.errors import Problem
from core.principal import Principal
from core.routes import _version as software_version
from ops import apikeys, tokens
from ops.fhir import reads, resources
from ops.fhir.reads import Token

PREFIX = "/fhir/R4"
FHIR_JSON = "application/fhir+json"
MAX_COUNT = 200
DEFAULT_COUNT = 50
RESOURCE_TYPES = ("Patient", "ServiceRequest", "DocumentReference", "Binary")
# Result parameters every search accepts (others are refused: a search the server cannot do
# must not silently return everything).
COMMON = {"_count", "_format"}
SEARCH_PARAMS = {
    "Patient": {"_id", "identifier"},
    "ServiceRequest": {"_id", "identifier", "patient", "subject", "subject.identifier"},
    "DocumentReference": {"_id", "identifier", "patient", "subject", "subject.identifier"},
}
# FHIR issue type of each HTTP status we answer with.
ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
}


class FhirError(Exception):
    def __init__(self, status: int, diagnostics: str, code: str | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code or ISSUE_CODE.get(status, "processing")


def fhir_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        content_type=FHIR_JSON,
        charset="utf-8",
    )


def outcome_response(status: int, code: str, diagnostics: str) -> web.Response:
    resp = fhir_response(resources.dump(resources.operation_outcome(code, diagnostics)), status)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="Consilium FHIR"'
    return resp


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fhir_errors(handler: Handler) -> Handler:
    """Every error of the FHIR surface as an OperationOutcome (problems included)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except FhirError as e:
            return outcome_response(e.status, e.code, e.diagnostics)
        except Problem as e:
            if e.status >= 500:  # the database is away: a 503 the client retries
                resp = outcome_response(e.status, "transient", e.detail or e.title or str(e))
                resp.headers["Retry-After"] = "5"
                return resp
            return outcome_response(
                e.status, ISSUE_CODE.get(e.status, "processing"), e.detail or e.title or str(e)
            )

    return wrapped


async def caller(request: web.Request) -> Principal:
    """A signed-in account (session), or another application: ``Basic`` API key id and
    secret, or ``Bearer`` an access token minted with the key and granting ``fhir_read``."""
    db = request.app[DB]
    ip = auth.client_ip(request)
    scheme, _, cred = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        key, user = await apikeys.check_basic(db, cred.strip(), ip=ip)
        return apikeys.principal_of(key, user, ip=ip)
    if scheme.lower() == "bearer":
        access = await tokens.verify(db, request.app[SETTINGS], cred.strip(), ip=ip)
        if not access.grants.fhir_read:
            raise await apikeys.refuse(
                db,
                "grant_missing",
                "This token does not grant fhir_read",
                ip=ip,
                key_id=access.key.id,
                status=403,
            )
        return apikeys.principal_of(access.key, access.user, ip=ip)
    p = await auth.require(request, "user")
    assert p is not None
    return p


# -- parameters ---------------------------------------------------------------------------


def _check_params(resource_type: str, query: MultiMapping[str]) -> None:
    allowed = SEARCH_PARAMS[resource_type] | COMMON
    unknown = sorted({k for k in query if k not in allowed})
    if unknown:
        raise FhirError(
            400,
            f"Unknown search parameter(s) for {resource_type}: {', '.join(unknown)}; "
            f"supported: {', '.join(sorted(SEARCH_PARAMS[resource_type]))}",
            "not-supported",
        )
    fmt = query.get("_format")
    if fmt is not None and fmt not in ("json", FHIR_JSON, "application/json"):
        raise FhirError(400, "Only JSON is served (_format=json)", "not-supported")


def _count(query: MultiMapping[str]) -> int:
    raw = query.get("_count")
    if raw is None:
        return DEFAULT_COUNT
    try:
        n = int(raw)
    except ValueError:
        raise FhirError(400, "_count must be a whole number") from None
    if n < 0:
        raise FhirError(400, "_count must not be negative")
    return min(n, MAX_COUNT)


def _values(query: MultiMapping[str], name: str) -> list[str] | None:
    """A parameter's values (repeated = AND of each, a comma = OR inside one); we only
    support OR lists, so a repeated parameter is refused."""
    got = query.getall(name, [])
    if not got:
        return None
    if len(got) > 1:
        raise FhirError(400, f"{name} may be given once (use commas for several values)")
    values = [v.strip() for v in got[0].split(",")]
    if not all(values):
        raise FhirError(400, f"{name} has an empty value")
    return values


def _uuid(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise FhirError(400, f"{what} {raw!r} is not a Consilium id") from None


def _ids(query: MultiMapping[str]) -> list[uuid.UUID] | None:
    values = _values(query, "_id")
    return None if values is None else [_uuid(v, "_id") for v in values]


def _tokens(query: MultiMapping[str], name: str) -> list[Token] | None:
    values = _values(query, name)
    return None if values is None else [Token.parse(v) for v in values]


def _patient_refs(query: MultiMapping[str]) -> list[uuid.UUID] | None:
    """``patient`` or ``subject``: ``Patient/<id>``, or a bare id."""
    refs: list[uuid.UUID] | None = None
    for name in ("patient", "subject"):
        values = _values(query, name)
        if values is None:
            continue
        got = []
        for v in values:
            kind, _, rid = v.rpartition("/")
            if kind and kind.rsplit("/", 1)[-1] != "Patient":
                raise FhirError(400, f"{name} must reference a Patient, not {v!r}")
            got.append(_uuid(rid, name))
        refs = got if refs is None else [r for r in refs if r in got]
    return refs


# -- handlers -----------------------------------------------------------------------------


def _base(request: web.Request) -> str:
    """Where this server is reached, for links (``fullUrl``, the PDF's URL): as the client
    called it, like other FHIR servers. Identifier systems use ``public_url`` instead, which
    never varies."""
    return str(request.url.origin())


def _systems(request: web.Request) -> str:
    return request.app[SETTINGS].public_url


async def metadata(request: web.Request) -> web.StreamResponse:
    """The CapabilityStatement (no authentication, as FHIR clients expect)."""
    cs = resources.capability_statement(_base(request), software_version())
    return fhir_response(resources.dump(cs))


async def _search(request: web.Request, resource_type: str, query: MultiMapping[str]) -> list[Any]:
    p = await caller(request)
    db, settings = request.app[DB], request.app[SETTINGS]
    base, systems = _base(request), _systems(request)
    count = _count(query)
    ids = _ids(query)
    if resource_type == "Patient":
        rows = await reads.patients(
            db, p, settings, ids=ids, identifiers=_tokens(query, "identifier"), limit=count
        )
        return [resources.patient(x, settings) for x in rows]
    patient_ids = _patient_refs(query)
    subject_ids = _tokens(query, "subject.identifier")
    if resource_type == "ServiceRequest":
        numbers = None
        if (idents := _tokens(query, "identifier")) is not None:
            numbers = [t.value for t in idents if t.system in (None, "", f"{systems}/dossiers")]
        rows_d = await reads.dossiers(
            db,
            p,
            settings,
            ids=ids,
            numbers=numbers,
            patient_ids=patient_ids,
            subject_identifiers=subject_ids,
            limit=count,
        )
        return [
            resources.service_request(
                r.dossier,
                base=systems,
                request_type=r.request_type,
                requester=r.requester,
                expert=r.expert,
            )
            for r in rows_d
        ]
    if (idents := _tokens(query, "identifier")) is not None:
        doc_ids = [
            _uuid(t.value.removeprefix("urn:uuid:"), "identifier")
            for t in idents
            if t.system in (None, "", resources.URN_SYSTEM)
        ]
        ids = doc_ids if ids is None else [i for i in ids if i in doc_ids]
    rows_r = await reads.reports(
        db,
        p,
        settings,
        ids=ids,
        patient_ids=patient_ids,
        subject_identifiers=subject_ids,
        limit=count,
    )
    return [
        resources.document_reference(
            r.document,
            r.pdf,
            subject={"reference": f"Patient/{r.patient.id}"},
            author=r.author,
            dossier=r.dossier,
            base=systems,
            url=f"{base}{PREFIX}/Binary/{r.document.id}",
            superseded=r.superseded,
        )
        for r in rows_r
    ]


def _known_type(resource_type: str) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise FhirError(
            404, f"Unknown or unsupported resource type {resource_type!r}", "not-supported"
        )


def _only_get(request: web.Request) -> None:
    if request.method not in ("GET", "HEAD"):
        raise FhirError(405, f"{request.method} is not supported: this API is read-only")


async def search_type(request: web.Request) -> web.StreamResponse:
    resource_type = request.match_info["type"]
    _known_type(resource_type)
    _only_get(request)
    if resource_type == "Binary":
        raise FhirError(400, "Binary is read by id only", "not-supported")
    _check_params(resource_type, request.query)
    found = await _search(request, resource_type, request.query)
    url = f"{_base(request)}{request.path_qs}"
    return fhir_response(resources.dump(resources.bundle(_base(request), url, found)))


async def read(request: web.Request) -> web.StreamResponse:
    resource_type, rid = request.match_info["type"], request.match_info["id"]
    _known_type(resource_type)
    _only_get(request)
    if rid == "_search":
        raise FhirError(405, "Search with GET", "not-supported")
    resource_id = _uuid(rid, f"{resource_type} id")
    if resource_type == "Binary":
        return await _binary(request, resource_id)
    one = MultiDict({"_id": str(resource_id)})
    found = await _search(request, resource_type, one)
    if not found:
        raise FhirError(404, f"{resource_type}/{rid} is not known (or not visible to you)")
    return fhir_response(resources.dump(found[0]))


async def _binary(request: web.Request, document_id: uuid.UUID) -> web.StreamResponse:
    """The report's PDF: raw bytes, or a FHIR ``Binary`` when JSON is asked for."""
    p = await caller(request)
    rows = await reads.reports(
        request.app[DB],
        p,
        request.app[SETTINGS],
        ids=[document_id],
        patient_ids=None,
        subject_identifiers=None,
        limit=1,
    )
    if not rows:
        raise FhirError(404, f"Binary/{document_id} is not known (or not visible to you)")
    doc, pdf = rows[0].document, rows[0].pdf
    if "json" in request.headers.get("Accept", ""):
        return fhir_response(
            {
                "resourceType": "Binary",
                "id": str(doc.id),
                "contentType": doc.content_type,
                "data": base64.b64encode(pdf).decode(),
            }
        )
    return web.Response(body=pdf, content_type=doc.content_type)


async def not_found(request: web.Request) -> web.StreamResponse:
    raise FhirError(404, f"No FHIR interaction at {request.path}", "not-supported")


def setup(app: web.Application) -> None:
    r = app.router
    r.add_route("GET", f"{PREFIX}/metadata", fhir_errors(metadata))
    r.add_route("*", f"{PREFIX}/{{type:[A-Za-z]+}}", fhir_errors(search_type))
    r.add_route("*", f"{PREFIX}/{{type:[A-Za-z]+}}/{{id}}", fhir_errors(read))
    r.add_route("*", f"{PREFIX}/{{tail:.*}}", fhir_errors(not_found))
