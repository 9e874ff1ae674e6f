"""Simulcast: one published camera track sent by the client as several RTP streams (layers).

The client's m-line carries up to three encodings told apart by their RID (`a=rid` /
`a=simulcast` in its offer, the `sdes:rtp-stream-id` header extension on the first packets of
each stream, `sdes:repaired-rtp-stream-id` on its RTX). A :class:`SimulcastForwarder` is the
published track the rest of the SFU sees (one track id, one set of subscribers); each layer is
a plain :class:`~rtc.forwarder.Forwarder` with its own history, statistics, NACKs, keyframe
requester and sender reports. A packet reaches its layer by SSRC, learnt from the RID the first
time the SSRC is seen.

Each down-track is written by one layer (`downtrack.feed`). Its wanted layer is the highest its
tile size (`set_view`) and an explicit cap (`set_max_layer`) let through (`ceiling`), lowered
to the layer its subscriber's budget chose (`DownTrack.budget_layer`: the allocation of the
subscriber's bandwidth estimate against `layer_rates`, see `DownTrack.set_allowance`); a
change registers the down-track on the new layer, which moves it at its next keyframe (a PLI
on that layer's SSRC asks for one). The munger keeps sequence
numbers and timestamps continuous across the switch. A layer that sends nothing for
`LAYER_TIMEOUT` is not chosen (the next lower one that lives is); the layers wanted by somebody
are reported to the publisher (`on_layers`, "dynacast") so that it stops encoding the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rtc.aiortc_internals import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtpPacket,
    TransportWriter,
    pack_remb_fci,
)
from rtc.downtrack import DownTrack
from rtc.forwarder import Forwarder, PacketTap
from rtc.stats import BitrateMeter

#: a layer with no packet for this long is not forwarded (seconds)
LAYER_TIMEOUT = 1.0
#: what each layer is assumed to take (bit/s) until it was measured: the web client's
#: `maxBitrate` of q, h and f (the top ones when there are fewer layers)
NOMINAL_RATES = (150_000, 500_000, 1_500_000)
#: at most this many layers (and RIDs of at most this length, RFC 8851 allows 255)
MAX_LAYERS = 3
MAX_RID_LENGTH = 16
#: packets without RID after which a lone stream is forwarded as the lowest layer
SINGLE_STREAM_AFTER = 50
#: assumed size of the top layer while no keyframe told us (scaleResolutionDownBy 4/2/1)
DEFAULT_TOP = (1280, 720)

LayersCallback = Callable[["SimulcastForwarder", list[str]], None]


class SimulcastForwarder(Forwarder):
    """A published track received as several layers; subscribers get one layer each."""

    def __init__(self, *, rids: Sequence[str], simulcast_bitrate: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        layer_kwargs = dict(kwargs, remb=None)
        self.layers = [Forwarder(**layer_kwargs, rid=rid) for rid in rids]
        self._by_rid = {layer.rid: layer for layer in self.layers}
        self._by_ssrc: dict[int, Forwarder] = {}
        self._live: set[Forwarder] = set()
        self.simulcast_bitrate = simulcast_bitrate
        #: each layer's bitrate over the last tick (bit/s)
        self.rates = [0] * len(self.layers)
        #: each layer's last non-zero measured bitrate (a layer dynacast stopped keeps it)
        self._known = list(NOMINAL_RATES[-len(self.layers) :]) if self.layers else []
        self._meters = [BitrateMeter() for _ in self.layers]
        #: packets whose SSRC and RID match no layer (dropped)
        self.unrouted = 0
        #: packets without RID per unknown SSRC; True once such a stream is forwarded
        self._ridless: dict[int, int] = {}
        self.single_stream = False
        #: the layers the publisher was last told to send, and whom to tell
        self.consumed: list[str] = [layer.rid or "" for layer in self.layers]
        self.on_layers: LayersCallback | None = None

    # --- packets ----------------------------------------------------------------------------

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        self.on_rtp(packet, arrival_time_ms)

    def on_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        layer = self._by_ssrc.get(packet.ssrc)
        if layer is None:
            extensions = packet.extensions
            rid = extensions.rtp_stream_id or extensions.repaired_rtp_stream_id
            layer = self._by_rid.get(rid) if rid else self._without_rid(packet.ssrc)
            if layer is None:
                self.unrouted += 1
                return
            self._by_ssrc[packet.ssrc] = layer
        if layer not in self._live:
            self._live.add(layer)
            layer.on_rtp(packet, arrival_time_ms)
            self._reselect_all()
            return
        layer.on_rtp(packet, arrival_time_ms)

    def _without_rid(self, ssrc: int) -> Forwarder | None:
        """A stream that never says its RID (a client that answered our offer without
        simulcast, or offered it and sends one stream anyway): once it sent
        `SINGLE_STREAM_AFTER` packets while no layer lives, it is forwarded as the lowest
        layer, i.e. the track goes on with one layer."""
        seen = self._ridless.get(ssrc, 0) + 1
        if len(self._ridless) > 16:
            self._ridless.clear()  # random SSRCs: do not grow
        self._ridless[ssrc] = seen
        if seen < SINGLE_STREAM_AFTER or self._live:
            return None
        self.single_stream = True
        return self.layers[0]

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        for layer in self.layers:
            await layer._handle_rtcp_packet(packet)

    def _handle_disconnect(self) -> None:
        self.refresh()

    # --- wiring -----------------------------------------------------------------------------

    def attach_publisher(
        self,
        writer: TransportWriter,
        rtcp_ssrc: int,
        payload_type: int,
        rtx_payload_type: int,
        media_ssrc: int,
    ) -> None:
        self.writer = writer
        self.rtcp_ssrc = rtcp_ssrc
        for layer in self.layers:  # SSRCs are learnt from the packets
            layer.attach_publisher(writer, rtcp_ssrc, payload_type, rtx_payload_type, 0)

    def add_downtrack(self, downtrack: DownTrack) -> None:
        self.downtracks.add(downtrack)
        layer = self._choose(downtrack)
        layer.add_downtrack(downtrack)
        self._update_consumed()

    def remove_downtrack(self, downtrack: DownTrack) -> None:
        self.downtracks.discard(downtrack)
        for layer in self.layers:
            if downtrack in layer.downtracks or downtrack in layer._switching:
                layer.remove_downtrack(downtrack)
        downtrack.feed = None
        self._update_consumed()

    def refresh(self) -> None:
        for layer in self.layers:
            layer.muted = self.muted
            layer.closed = self.closed
            layer.refresh()

    def pause_after_frame(self, downtrack: DownTrack) -> None:
        feed = downtrack.feed
        if feed is not None and feed is not self:
            feed.pause_after_frame(downtrack)
        self._update_consumed()

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        for layer in self.layers:
            layer.set_muted(muted)

    def add_tap(self, tap: PacketTap) -> None:
        """Snapshots read the top layer (full resolution), which is kept on meanwhile."""
        self._taps.append(tap)
        self.layers[-1].add_tap(tap)
        self._update_consumed()

    def remove_tap(self, tap: PacketTap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)
        self.layers[-1].remove_tap(tap)
        self._update_consumed()

    def request_keyframe(self) -> None:
        if self._taps:
            self.layers[-1].request_keyframe()
        for layer in {dt.feed for dt in self.downtracks if dt.feed is not None}:
            layer.request_keyframe()

    def rebuild(self, fseq: int, downtrack: DownTrack) -> bytes | None:
        feed = downtrack.feed
        return feed.rebuild(fseq, downtrack) if feed is not None and feed is not self else None

    def close(self) -> None:
        self.closed = True
        for dt in list(self.downtracks):
            dt.bind(None)
        for layer in self.layers:
            layer.close()
        self._taps.clear()

    # --- layer choice -----------------------------------------------------------------------

    def sizes(self) -> list[tuple[int, int]]:
        """Each layer's picture size: learnt from its keyframes, else assumed (halving)."""
        top = len(self.layers) - 1
        return [
            layer.resolution or (DEFAULT_TOP[0] >> (top - i), DEFAULT_TOP[1] >> (top - i))
            for i, layer in enumerate(self.layers)
        ]

    def ceiling(self, downtrack: DownTrack) -> int:
        """The highest layer index the tile (and an explicit `set_max_layer`) lets through:
        the smallest layer at least as large as the tile, whatever the budget."""
        top = len(self.layers) - 1
        ceiling = top
        if downtrack.max_layer is not None:
            ceiling = min(ceiling, downtrack.max_layer)
        if downtrack.view is not None:
            width, height = downtrack.view
            fits = next(
                (i for i, (w, h) in enumerate(self.sizes()) if w >= width and h >= height), top
            )
            ceiling = min(ceiling, fits)
        return ceiling

    def layer_rates(self) -> list[int]:
        """Each layer's bitrate as the allocation sees it: measured over the last second
        while it flows, else the last figure measured, else the nominal one."""
        return [
            rate if rate and layer in self._live else self._known[i]
            for i, (layer, rate) in enumerate(zip(self.layers, self.rates, strict=True))
        ]

    def wanted(self, downtrack: DownTrack) -> int:
        """The layer index this down-track should get, all limits applied."""
        wanted = self.ceiling(downtrack)
        if downtrack.budget_layer is not None:
            wanted = min(wanted, downtrack.budget_layer)
        return max(0, wanted)

    def _choose(self, downtrack: DownTrack) -> Forwarder:
        """The live layer closest to the wanted one (at or below it, else the lowest alive)."""
        wanted = self.wanted(downtrack)
        live = [i for i, layer in enumerate(self.layers) if layer in self._live]
        if not live:
            return self.layers[wanted]
        below = [i for i in live if i <= wanted]
        return self.layers[below[-1] if below else live[0]]

    def reselect(self, downtrack: DownTrack) -> None:
        """Re-evaluate one down-track's layer; a change happens at the new layer's keyframe."""
        if downtrack not in self.downtracks:
            return
        target = self._choose(downtrack)
        for layer in self.layers:
            if layer is not target:
                layer.cancel_switch(downtrack)
        if downtrack.feed is None:
            target.add_downtrack(downtrack)
        elif downtrack.feed is not target:
            if downtrack.waiting_keyframe and not downtrack.paused:
                # nothing sent from the current layer yet: simply wait on the new one
                downtrack.feed.downtracks.discard(downtrack)
                downtrack.feed.refresh()
                target.add_downtrack(downtrack)
                target.request_keyframe()
            else:
                target.switch_at_keyframe(downtrack)
        self._update_consumed()

    def _reselect_all(self) -> None:
        for downtrack in list(self.downtracks):
            self.reselect(downtrack)

    def _update_consumed(self) -> None:
        """Tell the publisher which layers somebody wants (the lowest always: joins start
        there at once; the top one while a snapshot reads it)."""
        wanted = {0}
        for downtrack in self.downtracks:
            if not downtrack.paused:
                wanted.add(self.wanted(downtrack))
        if self._taps:
            wanted.add(len(self.layers) - 1)
        consumed = [layer.rid or "" for i, layer in enumerate(self.layers) if i in wanted]
        if consumed != self.consumed:
            self.consumed = consumed
            if self.on_layers is not None:
                self.on_layers(self, consumed)

    # --- once a second ----------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """RR per layer, one REMB for all layers, layers that went quiet, choices again."""
        for layer in self.layers:
            layer.tick(now)
        for i, layer in enumerate(self.layers):
            self.rates[i] = self._meters[i].update(layer.stats.bytes)
            if self.rates[i] and layer in self._live:
                self._known[i] = self.rates[i]
        quiet = {layer for layer in self._live if now - layer.last_arrival > LAYER_TIMEOUT}
        if quiet:
            self._live -= quiet
        self._reselect_all()
        self._send_remb()

    def _send_remb(self) -> None:
        """The publisher may spend up to `simulcast_bitrate` on its layers: subscribers that
        cannot take the top layer get a lower one instead of lowering everybody's."""
        writer = self.writer
        ssrcs = [layer.media_ssrc for layer in self.layers if layer.media_ssrc]
        if writer is None or writer.rtcp is None or not ssrcs:
            return
        remb = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=self.rtcp_ssrc,
            media_ssrc=0,
            fci=pack_remb_fci(self.simulcast_bitrate, ssrcs),
        )
        writer.rtcp(bytes(remb))
        if self.remb is not None:
            self.remb.last_sent = self.simulcast_bitrate

    # --- statistics -------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        return sum(layer.dropped for layer in self.layers)

    def report(self) -> dict[str, Any]:
        layers = []
        totals = {"packets": 0, "bytes": 0, "packets_lost": 0, "bitrate": 0}
        for i, layer in enumerate(self.layers):
            stats = layer.stats.report()
            stats["bitrate"] = self.rates[i]
            for key in totals:
                totals[key] += stats[key]
            layers.append(
                {
                    "rid": layer.rid,
                    "ssrc": layer.media_ssrc or None,
                    "active": layer in self._live,
                    "consumed": layer.rid in self.consumed,
                    "bitrate": stats["bitrate"],
                    "packets": stats["packets"],
                    "width": layer.resolution[0] if layer.resolution else None,
                    "height": layer.resolution[1] if layer.resolution else None,
                    "subscribers": sum(1 for dt in self.downtracks if dt.feed is layer),
                    "plis_sent": layer.keyframes.plis_sent,
                }
            )
        return {
            "track_id": self.track_id,
            "kind": self.kind,
            "source": self.source,
            "codec": self.codec_name,
            "muted": self.muted,
            "subscribers": len(self.downtracks),
            "keyframe_requests": sum(layer.keyframes.requests for layer in self.layers),
            "plis_sent": sum(layer.keyframes.plis_sent for layer in self.layers),
            "nacks_sent": sum(layer.nacks_sent for layer in self.layers),
            "nacks_given_up": sum(layer.nacks_given_up for layer in self.layers),
            "remb": None if self.remb is None else self.remb.last_sent,
            "loss": 0.0,
            "jitter_ms": max(
                round(layer.stats.jitter * 1000 / self.clock_rate, 2) for layer in self.layers
            ),
            **totals,
            "simulcast": True,
            "unrouted": self.unrouted,
            "single_stream": self.single_stream,
            "layers": layers,
        }
