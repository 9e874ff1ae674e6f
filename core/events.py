"""In-process domain events, published after commit by :class:`core.db.UnitOfWork`.

Packages subscribe by event-name prefix (``room.``, ``dossier.``…). The Socket.IO layer
(rooms/) subscribes and fans events out to browsers; across nodes that fan-out rides on
Socket.IO's Redis manager, so this bus stays local to the process.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[["Event"], Awaitable[None]]


@dataclass(frozen=True)
class Event:
    name: str
    payload: dict[str, Any]
    routing: dict[str, Any] = field(default_factory=dict)


class EventBus:
    def __init__(self) -> None:
        self._subs: list[tuple[str, Handler]] = []

    def subscribe(self, prefix: str, handler: Handler) -> None:
        self._subs.append((prefix, handler))

    async def publish(self, event: Event) -> None:
        for prefix, handler in self._subs:
            if event.name.startswith(prefix):
                try:
                    await handler(event)
                except Exception:  # a failing listener must not undo a committed write
                    log.exception("event handler failed for %s", event.name)
