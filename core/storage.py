"""Blob storage: files written as streams, hashed on the way, made visible atomically.

Two parts with one job each:

- :class:`Staging` is always a local directory. An upload is streamed into a ``.part`` file
  in chunks (never held in memory), hashed with SHA-256 as it is written and cut off at the
  size limit. Resumable uploads append to a named staging file across requests.
- :class:`BlobStore` is where finished files live. :class:`LocalBlobStore` keeps them under
  ``<data_dir>/blobs`` and receives a staged file by ``os.replace`` (atomic on one
  filesystem), so no reader ever sees a half-written blob. A shared volume is the same class
  pointed at the mount; an S3-like store implements the same protocol (``put`` uploads the
  staged file, then deletes it).

Blobs are keyed by a random UUID rather than by content: a blob belongs to exactly one
document, so deleting a document deletes its blob without reference counting.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from core.errors import TooLarge

READ_CHUNK = 1024 * 1024
_WRITE_BUFFER = 1024 * 1024
HEAD_BYTES = 64 * 1024
_KEY = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class StagedFile:
    """A file fully written to the staging area, not yet visible as a blob."""

    path: Path
    size: int
    sha256: str
    head: bytes  # the first bytes, for content-type detection


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    sha256: str


class StagedWriter:
    """Stream chunks into a staging file: hashed, size-limited, buffered to few syscalls.

    ``finish()`` returns the :class:`StagedFile`; ``abort()`` removes what was written. Use
    it as an async context manager: leaving it with an exception aborts.
    """

    def __init__(self, path: Path, limit: int, *, append: bool = False) -> None:
        self.path = path
        self.limit = limit
        self._hash = hashlib.sha256()
        self._buf = bytearray()
        self._head = bytearray()
        self.size = 0
        self._file = open(path, "ab" if append else "xb")  # noqa: SIM115 (closed in finish/abort)
        if append:
            self.size = self._file.tell()
        self._done = False

    async def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.size + len(chunk) > self.limit:
            raise TooLarge(
                f"The file exceeds the limit of {self.limit} bytes",
                code="too_large",
                limit=self.limit,
            )
        self.size += len(chunk)
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]
        self._buf += chunk
        if len(self._buf) >= _WRITE_BUFFER:
            await self.flush()

    async def flush(self) -> None:
        if not self._buf:
            return
        data = bytes(self._buf)
        self._buf.clear()
        # hashlib and file writes release the GIL: both run off the event loop.
        await asyncio.to_thread(self._write_sync, data)

    def _write_sync(self, data: bytes) -> None:
        self._hash.update(data)
        self._file.write(data)

    async def finish(self) -> StagedFile:
        await self.flush()
        await asyncio.to_thread(self._close_sync)
        self._done = True
        return StagedFile(self.path, self.size, self._hash.hexdigest(), bytes(self._head))

    def _close_sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    async def close_keep(self) -> int:
        """Close and keep the bytes written so far (a resumable upload's interrupted chunk)."""
        await self.flush()
        await asyncio.to_thread(self._close_sync)
        self._done = True
        return self.size

    async def abort(self) -> None:
        if not self._done:
            self._done = True
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def __aenter__(self) -> StagedWriter:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            await self.abort()


class Staging:
    """The local staging directory: one-shot writes and named, resumable files."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._locks: dict[str, asyncio.Lock] = {}
        (root / "once").mkdir(parents=True, exist_ok=True)
        (root / "resumable").mkdir(parents=True, exist_ok=True)

    def writer(self, limit: int | None = None) -> StagedWriter:
        """A writer for a one-shot upload (a fresh file nobody else knows)."""
        return StagedWriter(
            self.root / "once" / f"{uuid.uuid4().hex}.part",
            min(limit or self.max_bytes, self.max_bytes),
        )

    async def stage(
        self, data: bytes | AsyncIterable[bytes] | StagedFile, limit: int | None = None
    ) -> StagedFile:
        """Bytes or a stream of chunks written to a fresh staged file (one already staged is
        returned as it is); more than ``limit`` bytes is refused by the writer."""
        if isinstance(data, StagedFile):
            return data
        w = self.writer(limit=limit)
        async with w:
            if isinstance(data, bytes | bytearray | memoryview):
                await w.write(bytes(data))
            else:
                async for chunk in data:
                    await w.write(chunk)
            return await w.finish()

    def _resumable(self, name: str) -> Path:
        if not _KEY.match(name):
            raise ValueError("resumable staging names are 32 hex digits")
        return self.root / "resumable" / f"{name}.part"

    def resumable_size(self, name: str) -> int:
        try:
            return self._resumable(name).stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, name: str, limit: int) -> StagedWriter:
        """A writer appending to the resumable staging file ``name``."""
        path = self._resumable(name)
        path.touch(exist_ok=True)
        return StagedWriter(path, limit, append=True)

    async def seal(self, name: str) -> StagedFile:
        """Hash a completed resumable file (it was written across requests) and hand it over."""
        path = self._resumable(name)

        def digest() -> StagedFile:
            h = hashlib.sha256()
            size = 0
            head = b""
            with open(path, "rb") as f:
                while block := f.read(READ_CHUNK):
                    if not head:
                        head = block[:HEAD_BYTES]
                    h.update(block)
                    size += len(block)
            return StagedFile(path, size, h.hexdigest(), head)

        return await asyncio.to_thread(digest)

    def discard(self, name: str) -> None:
        for path in (self._resumable(name), self._resumable(name).with_suffix(".lock")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def truncate(self, name: str, size: int) -> None:
        """Cut the resumable file ``name`` back to ``size`` bytes (a chunk that was refused)."""
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self._resumable(name), size)

    @asynccontextmanager
    async def exclusive(self, name: str, wait: float) -> AsyncIterator[bool]:
        """Hold the resumable file ``name`` alone: True once held, False after ``wait`` s.

        Chunks of one upload may reach different processes (``--workers``) or nodes sharing
        the data directory: an ``flock`` on a lock file beside the bytes serialises them
        without holding a database connection for the length of a slow chunk. (Linux maps
        ``flock`` to byte-range locks on NFS, so it holds across nodes too.) Coroutines of one
        process take an asyncio lock first, so they queue instead of polling.
        """
        lock_path = self._resumable(name).with_suffix(".lock")
        local = self._locks.setdefault(name, asyncio.Lock())
        try:
            async with local:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    deadline = time.monotonic() + wait
                    while True:
                        try:
                            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                            break
                        except BlockingIOError:
                            if time.monotonic() >= deadline:
                                yield False
                                return
                            await asyncio.sleep(0.05)
                    try:
                        yield True
                    finally:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)
        finally:
            if not local.locked() and self._locks.get(name) is local:
                del self._locks[name]

    def sweep(self, older_than_seconds: float) -> int:
        """Remove one-shot staging files left by a crash (resumable ones have their rows)."""
        limit = time.time() - older_than_seconds
        removed = 0
        for p in (self.root / "once").glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mtime < limit:
                    p.unlink()
                    removed += 1
        return removed

    def discard_file(self, staged: StagedFile) -> None:
        with contextlib.suppress(FileNotFoundError):
            staged.path.unlink()


class BlobStore(Protocol):
    """Where finished files live. Keys are opaque strings chosen by the store."""

    async def put(self, staged: StagedFile) -> BlobInfo:
        """Take ownership of a staged file (the staging file is gone afterwards)."""
        ...

    async def put_bytes(self, data: bytes) -> BlobInfo: ...

    def open(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` of a blob, in chunks."""
        ...

    async def read(self, key: str) -> bytes:
        """The whole blob (only for small ones: previews, reports, signatures)."""
        ...

    async def size(self, key: str) -> int: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove a blob; removing a missing one is not an error."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for libraries that need one (pydicom, zipfile), if any."""
        ...

    def list_keys(self) -> list[str]: ...

    def age_seconds(self, key: str) -> float:
        """Seconds since the blob was written (the orphan sweep spares fresh ones)."""
        ...


class LocalBlobStore:
    """Blobs as files under ``root/ab/<key>``; writes land by atomic rename."""

    def __init__(self, root: Path, staging: Staging) -> None:
        self.root = root
        self.staging = staging
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise FileNotFoundError(key)
        return self.root / key[:2] / key

    async def put(self, staged: StagedFile) -> BlobInfo:
        key = uuid.uuid4().hex
        dest = self._path(key)

        def move() -> None:
            dest.parent.mkdir(exist_ok=True)
            os.replace(staged.path, dest)

        await asyncio.to_thread(move)
        return BlobInfo(key, staged.size, staged.sha256)

    async def put_bytes(self, data: bytes) -> BlobInfo:
        w = self.staging.writer(limit=max(len(data), 1))
        async with w:
            await w.write(data)
            staged = await w.finish()
        return await self.put(staged)

    async def open(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self._path(key)
        f = await asyncio.to_thread(open, path, "rb")
        try:
            f.seek(start)
            remaining = None if end is None else max(end - start, 0)
            while remaining is None or remaining > 0:
                n = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                block = await asyncio.to_thread(f.read, n)
                if not block:
                    break
                if remaining is not None:
                    remaining -= len(block)
                yield block
        finally:
            f.close()

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    async def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except FileNotFoundError:
            return False

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(key).unlink)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def list_keys(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("*/*") if _KEY.match(p.name))

    def age_seconds(self, key: str) -> float:
        import time

        return time.time() - self._path(key).stat().st_mtime


@dataclass
class Storage:
    staging: Staging
    blobs: BlobStore


STORAGE: web.AppKey[Storage] = web.AppKey("storage")


def local_storage(data_dir: Path, max_bytes: int) -> Storage:
    staging = Staging(data_dir / "staging", max_bytes)
    return Storage(staging, LocalBlobStore(data_dir / "blobs", staging))


def of(app: web.Application) -> Storage:
    """The storage of an app, created on first use from its settings."""
    from core.context import SETTINGS

    if STORAGE not in app:
        s = app[SETTINGS]
        app[STORAGE] = local_storage(Path(s.data_dir), s.max_upload_bytes)
    return app[STORAGE]
