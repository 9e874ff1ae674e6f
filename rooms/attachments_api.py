"""REST routes of a room's in-call files (``/api/v1/rooms/{room_id}/attachments``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Literal
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel

from core import filetypes
from core.api import Api
from core.auth import principal as principal_of
from core.errors import BadRequest, TooLarge, UnsupportedMediaType, ValidationFailed
from rooms import attachments
from rooms.models import RoomAttachment

TAGS = ["rooms"]
STREAM_CHUNK = 256 * 1024
MAX_FIELD = 200


class Person(BaseModel):
    kind: str
    id: uuid.UUID
    label: str


class AttachmentOut(BaseModel):
    id: uuid.UUID
    room_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    source: Literal["upload", "snapshot", "screenshot", "dossier_document"]
    uploaded_by: Person
    recipient: Person | None
    dossier_document_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def of(cls, a: RoomAttachment) -> AttachmentOut:
        return cls.model_validate(attachments.attachment_out(a))


def content_disposition(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


class Interrupted(BadRequest):
    code = "upload_interrupted"
    title = "The upload was cut before its end"


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    try:
        while chunk := await part.read_chunk(STREAM_CHUNK):
            yield chunk
    except (ClientPayloadError, ConnectionError) as e:
        raise Interrupted(f"Envoi interrompu : {e}") from None


def _flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("", "0", "false", "no", "off"):
        return False
    raise ValidationFailed("file_into_dossier is true or false", code="bad_flag")


def setup(app: web.Application) -> None:
    api = Api.of(app)

    @api.post(
        "/rooms/{room_id}/attachments",
        response=AttachmentOut,
        status=201,
        auth="principal",
        tags=TAGS,
        errors=[400, 403, 404, 409, 413, 415, 422, 429],
        raw_body={
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "to": {"type": "string", "maxLength": MAX_FIELD},
                            "source": {
                                "type": "string",
                                "enum": ["upload", "snapshot", "screenshot"],
                            },
                            "file_into_dossier": {"type": "boolean"},
                            "file": {"type": "string", "format": "binary"},
                        },
                    }
                }
            },
        },
    )
    async def send_attachment(request: web.Request) -> web.Response:
        """Send a file in the room (multipart: `to`, `source`, `file_into_dossier`, then
        `file`, streamed); `to` is a participant id, account id or guest id (none: everyone)."""
        room_id = uuid.UUID(request.match_info["room_id"])
        p = principal_of(request)
        limit = min(attachments.MAX_ATTACHMENT_BYTES, attachments.storage_of(app).staging.max_bytes)
        if request.content_length and request.content_length > limit + 65536:
            raise TooLarge(f"Le fichier dépasse {limit} octets.", code="too_large", limit=limit)
        if not request.content_type.startswith("multipart/"):
            raise UnsupportedMediaType(
                "Send multipart/form-data with a `file` part", code="multipart_required"
            )
        fields: dict[str, str] = {}
        part: object = None
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "file":
                    break
                if part.name in ("to", "source", "file_into_dossier"):
                    raw = await part.read_chunk(MAX_FIELD + 1)
                    if len(raw) > MAX_FIELD:
                        raise ValidationFailed(f"`{part.name}` is too long", code="field_too_long")
                    try:
                        fields[part.name] = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ValidationFailed(
                            f"`{part.name}` is not UTF-8", code="bad_field"
                        ) from None
        except (ValueError, HttpProcessingError, AssertionError) as e:
            raise BadRequest(
                f"The multipart body is malformed: {e}", code="malformed_multipart"
            ) from None
        except (ClientPayloadError, ConnectionError) as e:
            raise Interrupted(f"Envoi interrompu : {e}") from None
        if not isinstance(part, BodyPartReader):
            raise BadRequest("The form has no `file` field.", code="file_missing")
        filename = unquote(part.filename or "")
        if not filename:
            raise BadRequest("The `file` part has no file name.", code="filename_missing")
        if any("\x00" in v for v in fields.values()):
            raise ValidationFailed("Text may not contain NUL characters", code="nul_character")
        source = fields.get("source", "upload").strip() or "upload"
        if source not in ("upload", "snapshot", "screenshot"):
            raise ValidationFailed("source is upload, snapshot or screenshot", code="bad_source")
        a = await attachments.add_attachment(
            app,
            p,
            room_id,
            filename=filename,
            data=_part_chunks(part),
            source=source,
            recipient=fields.get("to", "").strip() or None,
            file_into_dossier=_flag(fields.get("file_into_dossier", "")),
        )
        return web.json_response(AttachmentOut.of(a).model_dump(mode="json"), status=201)

    @api.get(
        "/rooms/{room_id}/attachments",
        response=list[AttachmentOut],
        auth="principal",
        tags=TAGS,
    )
    async def list_room_attachments(request: web.Request) -> list[AttachmentOut]:
        """The room's files I may see: all for hosts; for others, what is addressed to them
        or to everyone, and what they sent."""
        room_id = uuid.UUID(request.match_info["room_id"])
        found = await attachments.list_attachments(app, principal_of(request), room_id)
        return [AttachmentOut.of(a) for a in found]

    @api.get(
        "/rooms/{room_id}/attachments/{attachment_id}/content",
        auth="principal",
        tags=TAGS,
        raw_response=filetypes.openapi_content(),  # the file's own (sniffed) type
    )
    async def download_room_attachment(request: web.Request) -> web.StreamResponse:
        """Download a file sent in the room (only one addressed to me or to everyone)."""
        p = principal_of(request)
        a = await attachments.read_attachment(
            app,
            p,
            uuid.UUID(request.match_info["room_id"]),
            uuid.UUID(request.match_info["attachment_id"]),
        )
        storage = attachments.storage_of(app)
        headers = {
            "Content-Disposition": content_disposition(a.filename),
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        }
        path = storage.blobs.local_path(a.blob_key)
        if path is not None:
            resp = web.FileResponse(path, headers=headers, chunk_size=STREAM_CHUNK)
            resp.content_type = a.content_type
            return resp
        out = web.StreamResponse(headers=headers)
        out.content_type = a.content_type
        await out.prepare(request)
        async for block in storage.blobs.open(a.blob_key):
            await out.write(block)
        await out.write_eof()
        return out
