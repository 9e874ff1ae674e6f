"""The tus 1.0 resumable-upload protocol's headers (https://tus.io/protocols/resumable-upload).

Consilium's resumable upload resource (:mod:`dossier.documents.uploads`) speaks tus 1.0.0
with the ``creation``, ``checksum`` and ``termination`` extensions, so well-kept clients
(tus-js-client, Uppy, tuspy) work against it. This module only reads and writes the
protocol's headers; the routes call the upload actions.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from core.errors import BadRequest, Problem
from dossier.documents.uploads import CHECKSUM_ALGORITHMS

VERSION = "1.0.0"
EXTENSIONS = "creation,checksum,termination"
#: the header every tus response carries
RESUMABLE = {"Tus-Resumable": VERSION}
#: longest ``Upload-Metadata`` header read (the file name and a SHA-256 need far less)
MAX_METADATA = 4096


class UnsupportedVersion(Problem):
    status, code, title = 412, "tus_version", "Unsupported tus version"


def is_tus(headers: Mapping[str, str]) -> bool:
    """A request from a tus client (it sends ``Tus-Resumable`` on every request)."""
    return "Tus-Resumable" in headers


def check_version(headers: Mapping[str, str]) -> None:
    """412 with ``Tus-Version`` when the client speaks another version of the protocol."""
    version = headers.get("Tus-Resumable")
    if version is not None and version != VERSION:
        raise UnsupportedVersion(
            f"Seule la version {VERSION} du protocole tus est prise en charge.",
            supported=VERSION,
        )


def discovery_headers(max_size: int, chunk_size: int) -> dict[str, str]:
    """What an ``OPTIONS`` request answers: the server's tus capabilities, and the chunk
    size this installation advises (``Consilium-Chunk-Size``, not part of tus)."""
    return {
        **RESUMABLE,
        "Tus-Version": VERSION,
        "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        "Consilium-Chunk-Size": str(chunk_size),
    }


def upload_length(headers: Mapping[str, str]) -> int:
    if "Upload-Defer-Length" in headers:
        raise BadRequest(
            "La longueur de l'envoi doit être connue (Upload-Length).",
            code="tus_defer_length_unsupported",
        )
    raw = headers.get("Upload-Length", "")
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("En-tête Upload-Length requis (entier).", code="tus_length_missing")
    return int(raw)


def metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs, values UTF-8."""
    raw = headers.get("Upload-Metadata", "")
    if len(raw) > MAX_METADATA:
        raise BadRequest("En-tête Upload-Metadata trop long.", code="tus_metadata_too_long")
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        key, _, value = pair.partition(" ")
        if not key or " " in value or key in out:
            raise BadRequest("En-tête Upload-Metadata mal formé.", code="tus_metadata_malformed")
        try:
            out[key] = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(
                f"Upload-Metadata : la valeur de « {key} » n'est pas du base64 UTF-8.",
                code="tus_metadata_malformed",
            ) from None
    return out


def checksum(headers: Mapping[str, str]) -> tuple[str, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>`` of one PATCH's bytes, if given."""
    raw = headers.get("Upload-Checksum")
    if raw is None:
        return None
    algorithm, _, value = raw.strip().partition(" ")
    if algorithm.lower() not in CHECKSUM_ALGORITHMS:
        raise BadRequest(
            f"Algorithme de somme de contrôle non pris en charge : {algorithm[:20]}.",
            code="tus_checksum_algorithm",
            supported=list(CHECKSUM_ALGORITHMS),
        )
    try:
        digest = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise BadRequest("Upload-Checksum mal formé.", code="tus_checksum_malformed") from None
    return algorithm.lower(), digest
