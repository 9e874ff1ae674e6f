"""Keyframes: spotting them in RTP payloads, and asking publishers for them sparingly.

Subscribers that join, resume, or report picture loss (PLI/FIR) all want a keyframe from the
same publisher track; a :class:`KeyframeRequester` turns that crowd into at most one PLI per
`min_interval`, and skips a delayed PLI when a keyframe arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def is_vp8_keyframe_start(payload: bytes) -> bool:
    """True for the first packet of a VP8 keyframe (RFC 7741 descriptor, then P bit = 0)."""
    n = len(payload)
    if n < 1:
        return False
    b0 = payload[0]
    if not b0 & 0x10 or b0 & 0x07:  # S bit set and partition index 0
        return False
    i = 1
    if b0 & 0x80:  # X: extended control bits
        if n < 2:
            return False
        x = payload[1]
        i = 2
        if x & 0x80:  # I: picture id, 7 or 15 bits
            if n <= i:
                return False
            i += 2 if payload[i] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            i += 1
        if x & 0x30:  # T or K: TID/KEYIDX byte
            i += 1
    if n <= i:
        return False
    return not payload[i] & 0x01  # VP8 frame tag: P bit 0 means keyframe


def vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from the first packet of a VP8 keyframe (RFC 6386 §9.1), or None."""
    n = len(payload)
    if n < 1:
        return None
    i = 1
    if payload[0] & 0x80:
        if n < 2:
            return None
        x = payload[1]
        i = 2
        if x & 0x80:
            if n <= i:
                return None
            i += 2 if payload[i] & 0x80 else 1
        if x & 0x40:
            i += 1
        if x & 0x30:
            i += 1
    # 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height (little endian)
    if n < i + 10 or payload[i + 3 : i + 6] != b"\x9d\x01\x2a":
        return None
    width = (payload[i + 6] | (payload[i + 7] << 8)) & 0x3FFF
    height = (payload[i + 8] | (payload[i + 9] << 8)) & 0x3FFF
    return (width, height) if width and height else None


_H264_KEY_NALS = frozenset((5, 7))  # IDR slice, SPS


def is_h264_keyframe_start(payload: bytes) -> bool:
    """True for a packet that starts an H.264 IDR access unit (SPS or IDR start)."""
    n = len(payload)
    if n < 1:
        return False
    nal = payload[0] & 0x1F
    if nal in _H264_KEY_NALS:
        return True
    if nal == 24:  # STAP-A: 16-bit sizes then NAL units
        i = 1
        while i + 2 < n:
            size = (payload[i] << 8) | payload[i + 1]
            if payload[i + 2] & 0x1F in _H264_KEY_NALS:
                return True
            i += 2 + size
        return False
    if nal == 28 and n > 1:  # FU-A: start bit and original NAL type
        fu = payload[1]
        return bool(fu & 0x80) and (fu & 0x1F) in _H264_KEY_NALS
    return False


def keyframe_detector(codec_name: str) -> Callable[[bytes], bool]:
    if codec_name == "VP8":
        return is_vp8_keyframe_start
    if codec_name == "H264":
        return is_h264_keyframe_start
    return lambda payload: False


class KeyframeRequester:
    """Coalesces keyframe requests for one publisher track and rate-limits the PLIs sent."""

    def __init__(
        self,
        send_pli: Callable[[], None],
        min_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send_pli = send_pli
        self._min_interval = min_interval
        self._clock = clock
        self._last_sent = -1e9
        self._last_keyframe = -1e9
        self._last_request = -1e9
        self._timer: asyncio.TimerHandle | None = None
        self.requests = 0
        self.plis_sent = 0

    def request(self) -> None:
        """Someone needs a keyframe: send a PLI now, or once the rate limit allows."""
        now = self._clock()
        self.requests += 1
        self._last_request = now
        if self._timer is not None:
            return  # coalesced into the pending PLI
        wait = self._last_sent + self._min_interval - now
        if wait <= 0:
            self._send(now)
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self._fire)

    def keyframe_seen(self) -> None:
        self._last_keyframe = self._clock()

    @property
    def last_sent(self) -> float:
        return self._last_sent

    @property
    def pending(self) -> bool:
        return self._timer is not None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self._last_keyframe >= self._last_request:
            return  # a keyframe arrived after the last request: everybody got it
        self._send(self._clock())

    def _send(self, now: float) -> None:
        self._last_sent = now
        self.plis_sent += 1
        self._send_pli()
