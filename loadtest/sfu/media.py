"""Pre-encoded media for the SFU benchmark: encode once, replay as RTP payloads.

VP8 at about 1 Mbit/s (640x480, 30 fps, moving pattern plus noise so the encoder has work)
and Opus 20 ms frames of a tone. Payloads are packetized once with aiortc's packers, so the
publishers only stamp headers while replaying.
"""

from __future__ import annotations

import fractions
import math
import os
import pickle
from dataclasses import dataclass

import av
import numpy as np
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

WIDTH, HEIGHT, FPS = 640, 480, 30
VIDEO_BITRATE = 1_000_000
SECONDS = 10
CACHE = os.path.join(os.path.dirname(__file__), os.pardir, "out", "sfu-media.pickle")


@dataclass
class EncodedMedia:
    #: per video frame, the RTP payloads of that frame (30 fps, 3000 ticks of 90 kHz apart)
    video: list[list[bytes]]
    #: per 20 ms, one Opus payload (960 ticks of 48 kHz apart)
    audio: list[bytes]

    @property
    def video_bitrate(self) -> float:
        total = sum(len(p) for frame in self.video for p in frame)
        return total * 8 / (len(self.video) / FPS)


def _encode_video() -> list[list[bytes]]:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = WIDTH, HEIGHT
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = VIDEO_BITRATE
    codec.gop_size = FPS  # a keyframe every second: subscribers never wait long
    codec.time_base = fractions.Fraction(1, FPS)
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "minrate": str(VIDEO_BITRATE),
        "maxrate": str(VIDEO_BITRATE),
        "bufsize": str(VIDEO_BITRATE),
    }
    packer = Vp8Encoder()
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames: list[list[bytes]] = []
    for i in range(FPS * SECONDS):
        luma = ((x + 4 * i) // 16 % 2 * 120 + (y + 2 * i) // 24 % 2 * 60 + 30).astype(np.uint8)
        luma = np.clip(luma + rng.integers(0, 40, luma.shape, dtype=np.uint8), 0, 255)
        frame = av.VideoFrame.from_ndarray(luma.astype(np.uint8), format="gray")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = fractions.Fraction(1, FPS)
        for packet in codec.encode(frame):
            payloads, _ = packer.pack(packet)
            frames.append(payloads)
    for packet in codec.encode(None):
        frames.append(packer.pack(packet)[0])
    return frames


def _encode_audio() -> list[bytes]:
    encoder = OpusEncoder()
    payloads: list[bytes] = []
    n = 960
    for i in range(50 * SECONDS):
        t = (np.arange(n) + i * n) / 48000
        tone = (np.sin(2 * math.pi * 330 * t) * 0.2 * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = i * n
        frame.time_base = fractions.Fraction(1, 48000)
        out, _ = encoder.encode(frame)
        payloads.extend(out)
    return payloads


def load_media() -> EncodedMedia:
    """Encoded once per checkout (cached in loadtest/out/, ignored by git)."""
    if os.path.exists(CACHE):
        with open(CACHE, "rb") as f:
            media = pickle.load(f)
            if isinstance(media, EncodedMedia):
                return media
    media = EncodedMedia(video=_encode_video(), audio=_encode_audio())
    os.makedirs(os.path.dirname(CACHE), exist_ok=True)
    with open(CACHE, "wb") as f:
        pickle.dump(media, f)
    return media


if __name__ == "__main__":
    m = load_media()
    packets = sum(len(f) for f in m.video)
    print(
        f"{len(m.video)} video frames, {packets} packets, {m.video_bitrate / 1e6:.2f} Mbit/s;"
        f" {len(m.audio)} opus packets"
    )
