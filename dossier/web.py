"""HTTP plumbing shared by the dossier's routes modules.

:class:`core.api.RouteTable` (re-exported here) lets a ``routes.py`` declare its handlers at
module level; ``dossier.setup(app)`` registers every table on the app, in a fixed order. The
rest is what several routes modules need to stream bodies in and files out.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, ClientPayloadError, web

from core.api import RouteTable
from core.errors import BadRequest
from core.storage import Storage

__all__ = ["RouteTable"]

STREAM_CHUNK = 256 * 1024


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
