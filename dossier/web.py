"""HTTP plumbing shared by the dossier's routes modules.

:class:`RouteTable` lets a ``routes.py`` declare its handlers at module level, with the same
arguments as :class:`core.api.Api` (``@routes.post(path, body=Model, response=Model)``);
``dossier.setup(app)`` then registers every table on the app, in a fixed order. The rest is
what several routes modules need to stream bodies in and files out.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, ClientPayloadError, web

from core.api import Api, Handler
from core.errors import BadRequest
from core.storage import Storage

STREAM_CHUNK = 256 * 1024


@dataclass
class RouteTable:
    """Routes declared at import, registered on an app by :meth:`register`."""

    api: list[tuple[str, str, dict[str, Any], Handler]] = field(default_factory=list)
    plain: list[tuple[str, str, Handler]] = field(default_factory=list)

    def route(self, method: str, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        """A typed ``/api/v1`` route (see :meth:`core.api.Api.route` for the arguments)."""

        def declare(fn: Handler) -> Handler:
            self.api.append((method, path, kw, fn))
            return fn

        return declare

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

    def page(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """A plain aiohttp route outside ``/api/v1`` (an HTML page); decorators apply from
        the bottom up, so the lowest one is registered first."""

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


def uuid_of(request: web.Request, name: str) -> uuid.UUID:
    """A path parameter ending in ``_id`` (core.api has already answered 404 if malformed)."""
    return uuid.UUID(request.match_info[name])


def content_disposition(filename: str, inline: bool = False) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


class Interrupted(BadRequest):
    code = "upload_interrupted"
    title = "The upload was cut before its end"


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.content.iter_chunked(STREAM_CHUNK):
            yield chunk
    except (ClientPayloadError, ConnectionError) as e:
        raise Interrupted(f"Envoi interrompu : {e}") from None


async def part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    try:
        while chunk := await part.read_chunk(STREAM_CHUNK):
            yield chunk
    except (ClientPayloadError, ConnectionError) as e:
        raise Interrupted(f"Envoi interrompu : {e}") from None


def filename_from_headers(request: web.Request) -> str:
    name = request.query.get("filename") or unquote(request.headers.get("X-Filename", ""))
    if not name:
        raise BadRequest(
            "Give the file name (?filename=… or X-Filename header), or send multipart/form-data.",
            code="filename_missing",
        )
    return name


async def file_response(
    request: web.Request, storage: Storage, key: str, filename: str, ctype: str, inline: bool
) -> web.StreamResponse:
    path = storage.blobs.local_path(key)
    headers = {"Content-Disposition": content_disposition(filename, inline)}
    if path is not None:
        # FileResponse answers Range / If-Range (video seeking) and HEAD by itself.
        resp = web.FileResponse(path, headers=headers, chunk_size=STREAM_CHUNK)
        resp.content_type = ctype
        resp.headers["Cache-Control"] = "private, no-store"
        return resp
    out = web.StreamResponse(headers=headers)
    out.content_type = ctype
    await out.prepare(request)
    async for block in storage.blobs.open(key):
        await out.write(block)
    await out.write_eof()
    return out


@asynccontextmanager
async def local_file(storage: Storage, key: str) -> AsyncIterator[Path]:
    """A path to a blob's bytes: the blob itself on a local store, else a staged copy."""
    path = storage.blobs.local_path(key)
    if path is not None:
        yield path
        return
    w = storage.staging.writer()
    async with w:
        async for block in storage.blobs.open(key):
            await w.write(block)
        staged = await w.finish()
    try:
        yield staged.path
    finally:
        storage.staging.discard_file(staged)
