"""Heavy work (decoding images, rendering PDF pages and DICOM frames) in a bounded process pool.

Pillow, pymupdf and pydicom allocate in C, outside Python's reach: a thread cannot be stopped
nor bounded, and what it allocates stays in the server's heap. So the work runs in a small
pool of *processes* (``spawn``, never ``fork`` of a threaded event loop), each with an address
space limit (``RLIMIT_AS``) set when it starts and Pillow's pixel limit set from the same
setting as the upload check. A file that needs more memory fails in its worker with a
``MemoryError`` (or the worker dies), the caller gets a clear 422, and the server's own memory
does not move. Workers are replaced after a number of tasks, so fragmentation does not pile up.

    from core.heavy import run_heavy
    png = await run_heavy(previews.render, "image", path)

``fn`` and its arguments must be picklable (a module-level function, paths, bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from core.errors import ValidationFailed

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    workers: int = 1
    memory_bytes: int = 1536 * 1024**2
    max_pixels: int = 50_000_000
    tasks_per_worker: int = 50


class TooHeavy(ValidationFailed):
    code = "file_too_heavy"
    title = "The file needs more memory than the server allows"


_limits = Limits()
_pool: ProcessPoolExecutor | None = None
_tasks = 0  # submitted to the current pool
_in_flight = 0  # submitted and not finished (the metrics' queue length)


def configure(*, workers: int, memory_mb: int, max_pixels: int) -> None:
    """Set the bounds (from the settings, at start-up); the pool starts on first use."""
    global _limits, _pool
    new = Limits(workers=workers, memory_bytes=memory_mb * 1024**2, max_pixels=max_pixels)
    if new != _limits and _pool is not None:
        _pool.shutdown(wait=False)
        _pool = None
    _limits = new


def limits() -> Limits:
    return _limits


def _init_worker(memory_bytes: int, max_pixels: int) -> None:
    import resource

    # One thread per library: BLAS and OpenMP pools would each reserve address space.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    with contextlib.suppress(OSError):
        os.nice(5)  # previews wait; calls and the API do not
    from core.filetypes import set_max_image_pixels

    set_max_image_pixels(max_pixels)  # Pillow's own limit, the same as the upload check


def _get_pool() -> ProcessPoolExecutor:
    """The pool, replaced by a fresh one after ``tasks_per_worker`` tasks per worker (the old
    one finishes what it holds, then its processes exit). Not ``max_tasks_per_child``: on
    Python 3.11 a pool whose worker exits that way can hang every later task (CPython
    gh-115634), which froze previews after 50 files."""
    global _pool, _tasks
    if _pool is not None and _tasks >= _limits.tasks_per_worker * _limits.workers:
        _pool.shutdown(wait=False)
        _pool = None
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=_limits.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(_limits.memory_bytes, _limits.max_pixels),
        )
        _tasks = 0
    _tasks += 1
    return _pool


async def run_heavy(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a worker process with bounded memory.

    A ``MemoryError`` or a dead worker becomes :class:`TooHeavy` (422 ``file_too_heavy``);
    other exceptions from ``fn`` are raised here as they were raised there.
    """
    global _pool, _in_flight
    pool = _get_pool()
    loop = asyncio.get_running_loop()
    _in_flight += 1
    try:
        return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))
    except MemoryError:
        log.warning("heavy work ran out of memory: %s", getattr(fn, "__qualname__", fn))
        raise TooHeavy("Le fichier demande plus de mémoire que le serveur n'en accorde.") from None
    except BrokenProcessPool:
        log.warning("a heavy-work process died: %s", getattr(fn, "__qualname__", fn))
        if _pool is pool:
            _pool = None
            pool.shutdown(wait=False, cancel_futures=True)
        raise TooHeavy("Le traitement du fichier a dépassé les limites du serveur.") from None
    finally:
        _in_flight -= 1


def in_flight() -> int:
    """Heavy tasks submitted and not finished yet, in this process."""
    return _in_flight


def shutdown() -> None:
    """Stop the workers (at application clean-up)."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None
