"""Active speaker from the RFC 6464 audio level each publisher puts in its RTP header.

The forwarder accumulates levels per audio track on the packet path (two additions); the
detector looks at those sums every interval and names a new speaker only when someone has
been the loudest for two intervals in a row and the previous speaker held the floor for
`hold` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: level (-dBov) that stands for silence, RFC 6464.
SILENCE = 127


class SpeakerDetector:
    def __init__(
        self,
        threshold: int,
        hold: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.hold = hold
        self._clock = clock
        self.current: str | None = None
        self._since = -1e9
        self._candidate: str | None = None
        self._candidate_count = 0

    def update(self, levels: dict[str, float]) -> str | None:
        """Feed mean levels (-dBov, lower is louder) of this interval; return a new speaker.

        Returns the participant id when the active speaker changes, else None.
        """
        now = self._clock()
        loudest: str | None = None
        best = float(self.threshold)
        for participant, level in levels.items():
            if level < best:
                best = level
                loudest = participant
        if loudest is None or loudest == self.current:
            self._candidate = None
            self._candidate_count = 0
            return None
        if loudest == self._candidate:
            self._candidate_count += 1
        else:
            self._candidate = loudest
            self._candidate_count = 1
        if self._candidate_count >= 2 and now - self._since >= self.hold:
            self.current = loudest
            self._since = now
            self._candidate = None
            self._candidate_count = 0
            return loudest
        return None

    def forget(self, participant: str) -> bool:
        """A participant left or was muted; True if they were the active speaker."""
        if self._candidate == participant:
            self._candidate = None
            self._candidate_count = 0
        if self.current == participant:
            self.current = None
            return True
        return False
