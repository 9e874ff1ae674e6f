"""Typed JSON routes under ``/api/v1`` and the OpenAPI 3.1 document generated from them.

A route declares its request and response pydantic models once; the same declaration
validates the request, serialises the response and feeds ``/api/v1/openapi.json``::

    api = Api.of(app)

    @api.post("/rooms", body=RoomCreate, response=RoomOut, status=201, tags=["rooms"])
    async def create_room(request: web.Request, body: RoomCreate) -> RoomOut: ...

Handlers receive ``body`` and/or ``query`` keyword arguments when declared. Path parameters
whose names end in ``_id`` must be UUIDs (else 404). ``auth`` says who may call:
``"user"`` (a fully signed-in account, the default), ``"admin"``, ``"principal"`` (a user or
an invited guest) or ``"none"``. ``errors`` lists the problem statuses a route may answer
beyond those its declaration implies (400/413/415/422 with a body, 401/403 unless
``auth="none"``, 404 with an ``_id`` path parameter): e.g. ``errors=[409, 429]``. The OpenAPI
document lists exactly these, and the schemathesis test holds every route to it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import MultipartReader, web
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic.json_schema import models_json_schema

from core.errors import (
    BadRequest,
    NotFound,
    TooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

PREFIX = "/api/v1"
Auth = Literal["none", "principal", "user", "admin"]
Handler = Callable[..., Awaitable[Any]]

_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")
API_KEY: web.AppKey[Api] = web.AppKey("api")


@dataclass
class RouteSpec:
    method: str
    path: str
    handler: Handler
    summary: str
    tags: list[str]
    auth: Auth
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    raw_body: dict[str, Any] | None = None  # OpenAPI requestBody for non-JSON routes
    raw_response: dict[str, Any] | None = None
    errors: list[int] = field(default_factory=list)


def _errors_of(e: PydanticValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in e.errors(include_url=False, include_context=False, include_input=False)
    ]


class _Verbs:
    """``get``/``post``/``put``/``patch``/``delete`` shortcuts over ``route``."""

    route: Callable[..., Callable[[Handler], Handler]]

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)


class RouteTable(_Verbs):
    """Typed routes declared at import in a package's ``routes.py``
    (``routes = RouteTable()``, then ``@routes.post(path, body=Model, response=Model)`` with
    :meth:`Api.route`'s arguments), registered on an app by :meth:`register`; ``page`` adds a
    plain aiohttp route outside ``/api/v1`` (an HTML page)."""

    def __init__(self) -> None:
        self.api: list[tuple[str, str, dict[str, Any], Handler]] = []
        self.plain: list[tuple[str, str, Handler]] = []

    def route(self, method: str, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        def declare(fn: Handler) -> Handler:
            self.api.append((method, path, kw, fn))
            return fn

        return declare

    def page(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Decorators apply from the bottom up, so the lowest one is registered first."""

        def declare(fn: Handler) -> Handler:
            self.plain.append((method, path, fn))
            return fn

        return declare

    def register(self, app: web.Application) -> None:
        api = Api.of(app)
        for method, path, kw, fn in self.api:
            api.route(method, path, **kw)(fn)
        for method, path, fn in self.plain:
            if method == "GET":
                app.router.add_get(path, fn)  # answers HEAD too
            else:
                app.router.add_route(method, path, fn)


class Api(_Verbs):
    """The registry of typed routes of one application."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.routes: list[RouteSpec] = []
        self._openapi: dict[str, Any] | None = None

    @classmethod
    def of(cls, app: web.Application) -> Api:
        if API_KEY not in app:
            app[API_KEY] = cls(app)
        return app[API_KEY]

    # -- declaration -------------------------------------------------------------------

    def route(
        self,
        method: str,
        path: str,
        *,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        auth: Auth = "user",
        tags: list[str] | None = None,
        summary: str | None = None,
        raw_body: dict[str, Any] | None = None,
        raw_response: dict[str, Any] | None = None,
        errors: list[int] | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            spec = RouteSpec(
                method=method.upper(),
                path=path,
                handler=fn,
                summary=summary or (fn.__doc__ or fn.__name__).strip().splitlines()[0],
                tags=tags or [],
                auth=auth,
                body=body,
                query=query,
                response=response,
                status=status,
                raw_body=raw_body,
                raw_response=raw_response,
                errors=errors or [],
            )
            self.routes.append(spec)
            self.app.router.add_route(spec.method, PREFIX + path, self._wrap(spec))
            self._openapi = None
            return fn

        return register

    # -- request handling --------------------------------------------------------------

    def _wrap(self, spec: RouteSpec) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        from core import auth  # late: auth registers its own routes through this module

        response_adapter = (
            TypeAdapter(spec.response)
            if spec.response is not None and not _is_model(spec.response)
            else None
        )

        async def handler(request: web.Request) -> web.StreamResponse:
            for name, value in request.match_info.items():
                if name.endswith("_id"):
                    try:
                        uuid.UUID(value)
                    except ValueError:
                        raise NotFound(f"No {name.removesuffix('_id')} with this id") from None
            if spec.auth != "none":
                await auth.require(request, spec.auth)
            kwargs: dict[str, Any] = {}
            if spec.query is not None:
                if _has_nul(dict(request.query)):
                    raise ValidationFailed(
                        "Text may not contain NUL characters", code="nul_character"
                    )
                try:
                    kwargs["query"] = spec.query.model_validate(dict(request.query))
                except PydanticValidationError as e:
                    raise ValidationFailed(
                        "Invalid query parameters", errors=_errors_of(e)
                    ) from None
            if spec.body is not None:
                kwargs["body"] = await parse_body(request, spec.body)
            result = await spec.handler(request, **kwargs)
            if isinstance(result, web.StreamResponse):
                return result
            if result is None:
                return web.Response(status=204 if spec.status == 200 else spec.status)
            if isinstance(result, BaseModel):
                data = result.model_dump(mode="json")
            elif response_adapter is not None:
                data = response_adapter.dump_python(result, mode="json")
            else:
                data = result
            return web.json_response(data, status=spec.status)

        handler.__name__ = spec.handler.__name__
        return handler

    # -- OpenAPI -----------------------------------------------------------------------

    def openapi(self, *, title: str, version: str) -> dict[str, Any]:
        if self._openapi is not None:
            return self._openapi
        models: set[type[BaseModel]] = set()
        for r in self.routes:
            for m in (r.body, r.query, _model_in(r.response)):
                if m is not None:
                    models.add(m)
        ordered = sorted(models, key=lambda m: m.__name__)
        _, defs = models_json_schema(
            [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
        )
        schemas = dict(defs.get("$defs", {}))
        schemas["Problem"] = PROBLEM_SCHEMA
        paths: dict[str, dict[str, Any]] = {}
        for r in self.routes:
            op: dict[str, Any] = {
                "operationId": f"{r.handler.__module__.split('.')[0]}_{r.handler.__name__}",
                "summary": r.summary,
                "tags": r.tags,
                "responses": {},
            }
            params = [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"}
                    if name.endswith("_id")
                    else {"type": "string"},
                }
                for name in _PARAM.findall(r.path)
            ]
            if r.query is not None:
                qschema = r.query.model_json_schema(ref_template="#/components/schemas/{model}")
                required = set(qschema.get("required", []))
                for name, prop in qschema.get("properties", {}).items():
                    params.append(
                        {"name": name, "in": "query", "required": name in required, "schema": prop}
                    )
            if params:
                op["parameters"] = params
            if r.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{r.body.__name__}"}
                        }
                    },
                }
            elif r.raw_body is not None:
                op["requestBody"] = r.raw_body
            ok: dict[str, Any] = {"description": "Success"}
            if r.raw_response is not None:
                ok["content"] = r.raw_response
            elif r.response is not None:
                ok["content"] = {"application/json": {"schema": _schema_of(r.response)}}
            op["responses"][str(_success_status(r))] = ok
            problem = {
                "content": {PROBLEM_CT: {"schema": {"$ref": "#/components/schemas/Problem"}}}
            }
            codes = set(r.errors)
            if r.body is not None or r.query is not None or r.raw_body is not None:
                codes |= {400, 413, 415, 422}
            if r.auth != "none":
                codes |= {401, 403}
            if any(n.endswith("_id") for n in _PARAM.findall(r.path)):
                codes.add(404)
            for c in sorted(codes):
                op["responses"][str(c)] = {"description": _REASONS.get(c, "Error"), **problem}
            if r.auth != "none":
                op["security"] = [{"session": []}]
            paths.setdefault(PREFIX + r.path, {})[r.method.lower()] = op
        _add_links(paths, schemas)
        self._openapi = {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "servers": [{"url": "/"}],
            "paths": dict(sorted(paths.items())),
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "session": {"type": "apiKey", "in": "cookie", "name": "consilium_session"}
                },
            },
        }
        return self._openapi


PROBLEM_CT = "application/problem+json"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
_REASONS = {
    400: "Malformed request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict with the current state",
    410: "Gone",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Validation failed",
    423: "Locked",
    429: "Too many requests",
}


def _add_links(paths: dict[str, dict[str, Any]], schemas: dict[str, Any]) -> None:
    """OpenAPI links from each create to the operations on what it created: a ``POST P``
    answering 201 with an ``id`` links to every operation under ``P/{x_id}`` whose other path
    parameters the create's own request gives (``$request.path.…``). Clients and the stateful
    schemathesis run follow them (create a room, then read, change, invite, close it)."""
    for path, ops in paths.items():
        create = ops.get("post")
        created = create["responses"].get("201") if create else None
        if created is None:
            continue
        schema = created.get("content", {}).get("application/json", {}).get("schema", {})
        model = schemas.get(str(schema.get("$ref", "")).rsplit("/", 1)[-1], {})
        if "id" not in model.get("properties", {}):
            continue
        known = set(_PARAM.findall(path))
        links: dict[str, Any] = {}
        for other, other_ops in paths.items():
            m = re.match(re.escape(path) + r"/\{(\w+)\}(/|$)", other)
            if m is None:
                continue
            names = _PARAM.findall(other)
            if not set(names) <= known | {m.group(1)}:
                continue  # needs an id this create does not give
            parameters = {
                n: "$response.body#/id" if n == m.group(1) else f"$request.path.{n}" for n in names
            }
            for op in other_ops.values():
                links[op["operationId"]] = {
                    "operationId": op["operationId"],
                    "parameters": parameters,
                }
        # ``POST /patients`` → every operation without path parameters whose body names a
        # ``patient_id`` (a dossier for the new patient).
        field = path.rsplit("/", 1)[-1].removesuffix("s") + "_id"
        for other, other_ops in paths.items():
            target = other_ops.get("post")
            if other == path or target is None or _PARAM.search(other):
                continue
            body = target.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = str(body.get("schema", {}).get("$ref", "")).rsplit("/", 1)[-1]
            if field in schemas.get(ref, {}).get("required", []):
                links[target["operationId"]] = {
                    "operationId": target["operationId"],
                    "requestBody": {field: "$response.body#/id"},
                }
        if links:
            created["links"] = links


def _success_status(r: RouteSpec) -> int:
    """The status a route answers on success, as the handler wrapper sends it.

    A handler returning None answers 204 (unless another status was declared); a HEAD route
    answers what its handler builds, by default the declared status (200), with no body.
    """
    if r.response is not None or r.raw_response or r.method == "HEAD":
        return r.status
    return 204 if r.status == 200 else r.status


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _model_in(t: Any) -> type[BaseModel] | None:
    if _is_model(t):
        return t
    for arg in getattr(t, "__args__", ()):
        if _is_model(arg):
            return arg
    return None


def _schema_of(t: Any) -> dict[str, Any]:
    if _is_model(t):
        return {"$ref": f"#/components/schemas/{t.__name__}"}
    return TypeAdapter(t).json_schema(ref_template="#/components/schemas/{model}")


M = TypeVar("M", bound=BaseModel)


async def parse_body(request: web.Request, model: type[M]) -> M:
    """Read and validate a JSON body: 415, 413, 400 or 422 problems, never a 500."""
    ctype = request.content_type
    if ctype != "application/json":
        raise UnsupportedMediaType("Send the body as application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"The body exceeds {request.client_max_size} bytes") from None
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not valid JSON", code="malformed_json") from None
    except RecursionError:
        raise _too_deep() from None
    if _has_nul(data):
        raise ValidationFailed("Text may not contain NUL characters", code="nul_character")
    try:
        return model.model_validate(data)
    except PydanticValidationError as e:
        raise ValidationFailed(errors=_errors_of(e)) from None


MAX_JSON_DEPTH = 32  # no request model nests deeper; 330 levels once made a RecursionError


def _too_deep() -> ValidationFailed:
    return ValidationFailed(
        f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels", code="json_too_deep"
    )


def _has_nul(data: Any) -> bool:
    """NUL characters are refused everywhere: PostgreSQL cannot store them in text.

    Walks without recursion and refuses (422 ``json_too_deep``) what nests too deep.
    """
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise _too_deep()
            if isinstance(item, dict):
                stack.extend((k, depth + 1) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return False


async def multipart_reader(request: web.Request) -> MultipartReader:
    """``request.multipart()``, with a malformed content type (no boundary) as a 400."""
    try:
        return await request.multipart()
    except (ValueError, KeyError, AssertionError) as e:
        raise BadRequest(
            f"The multipart body is malformed: {e}", code="malformed_multipart"
        ) from None
