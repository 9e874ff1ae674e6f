"""Snapshot: the one place the SFU decodes. One frame of one video track, to JPEG.

A tap on the forwarder collects the packets of the next keyframe (asking the publisher for
one), the frame is depayloaded and decoded in a worker thread at the publisher's resolution.
Storing the JPEG (dossier document or room attachment, author, time) is the caller's job.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import itertools
from dataclasses import dataclass, field
from typing import Any

import av

from rtc import aiortc_internals
from rtc.aiortc_internals import RtpPacket
from rtc.errors import SNAPSHOT_FAILED, RtcError
from rtc.forwarder import Forwarder

_DECODERS = {"VP8": "libvpx", "H264": "h264"}


@dataclass(frozen=True)
class Snapshot:
    jpeg: bytes
    width: int
    height: int
    participant_id: str
    track_id: str
    source: str
    taken_by: str | None
    taken_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))


class _FrameCollector:
    """Gathers the packets of one complete keyframe from a forwarder's packet stream."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.done: asyncio.Future[list[RtpPacket]] = asyncio.get_running_loop().create_future()
        self._packets: dict[int, RtpPacket] = {}
        self._timestamp: int | None = None

    def __call__(self, packet: RtpPacket, keyframe: bool) -> None:
        if self.done.done():
            return
        if keyframe:
            self._packets = {}
            self._timestamp = packet.timestamp
        if self._timestamp is None or packet.timestamp != self._timestamp:
            return
        self._packets[packet.sequence_number] = packet
        if packet.marker:
            ordered = self._ordered()
            if ordered is None:
                self._timestamp = None  # a hole: wait for the next keyframe
                self.forwarder.request_keyframe()
            else:
                self.done.set_result(ordered)

    def _ordered(self) -> list[RtpPacket] | None:
        seqs = sorted(self._packets)
        if seqs and seqs[-1] - seqs[0] > 0x8000:  # wrapped around 65535
            seqs = sorted(seqs, key=lambda s: (s + 0x8000) & 0xFFFF)
        for a, b in itertools.pairwise(seqs):
            if (b - a) & 0xFFFF != 1:
                return None
        return [self._packets[s] for s in seqs]


def _decode_to_jpeg(codec_name: str, data: bytes, quality: int) -> tuple[bytes, int, int]:
    decoder: Any = av.CodecContext.create(_DECODERS[codec_name], "r")
    frames = list(decoder.decode(av.Packet(data)))
    if not frames:
        frames = list(decoder.decode(None))
    if not frames:
        raise ValueError("the decoder returned no picture")
    frame = frames[-1]
    image = frame.to_image()
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue(), frame.width, frame.height


async def take_snapshot(
    forwarder: Forwarder, *, taken_by: str | None = None, wait: float = 3.0, quality: int = 85
) -> Snapshot:
    if forwarder.kind != "video" or forwarder.codec_name not in _DECODERS:
        raise RtcError(SNAPSHOT_FAILED, f"cannot snapshot a {forwarder.codec_name} track")
    collector = _FrameCollector(forwarder)
    forwarder.add_tap(collector)
    forwarder.request_keyframe()
    try:
        packets = await asyncio.wait_for(collector.done, wait)
    except TimeoutError:
        raise RtcError(SNAPSHOT_FAILED, "no keyframe from the publisher in time") from None
    finally:
        forwarder.remove_tap(collector)
    try:
        data = b"".join(
            aiortc_internals.depayload(forwarder.codec_name, p.payload) for p in packets
        )
        loop = asyncio.get_running_loop()
        jpeg, width, height = await loop.run_in_executor(
            None, _decode_to_jpeg, forwarder.codec_name, data, quality
        )
    except (ValueError, av.FFmpegError) as exc:
        raise RtcError(SNAPSHOT_FAILED, f"could not decode the frame: {exc}") from exc
    return Snapshot(
        jpeg=jpeg,
        width=width,
        height=height,
        participant_id=forwarder.publisher_id,
        track_id=forwarder.track_id,
        source=forwarder.source,
        taken_by=taken_by,
    )
