"""Taps on aiortc transports for the load generators: count received media without paying for it.

They reach into aiortc like rtc/aiortc_internals.py does, but only load generators use them,
so they live here rather than in the server's package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc import RTCDtlsTransport

from rtc.aiortc_internals import enlarge_socket_buffers


def intercept_rtp_data(dtls: RTCDtlsTransport, callback: Callable[[bytes, int], None]) -> None:
    """Hand every decrypted RTP packet of `dtls` to `callback(data, arrival_ms)`, unparsed.

    For load generators that count and timestamp what they receive without paying for
    aiortc's packet parsing, routing, jitter buffer and decoder.
    """

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        callback(data, arrival_time_ms)

    setattr(dtls, "_handle_rtp_data", handle_rtp_data)  # noqa: B010


def intercept_srtp_datagrams(dtls: RTCDtlsTransport, callback: Callable[[bytes], None]) -> bool:
    """Hand every SRTP (not SRTCP) datagram of a connected transport to `callback`, as is.

    The RTP header travels in clear in SRTP, so a load generator can count and timestamp
    packets by SSRC, sequence number and timestamp without decrypting, queueing or parsing
    them. STUN, DTLS and SRTCP still go to aioice/aiortc. False if not connected yet.
    """
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        return False
    protocol = pair.protocol
    enlarge_socket_buffers(protocol.transport, 4 << 20)
    original = protocol.datagram_received

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 209:
            callback(data)
        else:
            original(data, addr)

    setattr(protocol, "datagram_received", datagram_received)  # noqa: B010
    return True
