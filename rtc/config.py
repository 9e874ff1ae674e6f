"""SFU configuration: a plain dataclass, filled by core settings (CONSILIUM_* variables)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RtcConfig:
    """Everything the SFU needs to know about its environment.

    Field ↔ setting: stun_urls ↔ CONSILIUM_STUN_URLS, turn_urls ↔ CONSILIUM_TURN_URLS,
    turn_secret ↔ CONSILIUM_TURN_SECRET, turn_ttl ↔ CONSILIUM_TURN_TTL,
    allowed_addresses ↔ CONSILIUM_RTC_ALLOWED_ADDRESSES,
    allowed_networks ↔ CONSILIUM_RTC_ALLOWED_NETWORKS, udp_ports ↔ CONSILIUM_RTC_UDP_PORTS.
    """

    #: STUN servers handed to clients and used by the server ("stun:host:port").
    stun_urls: tuple[str, ...] = ()
    #: TURN servers handed to clients ("turn:host:3478?transport=udp", "turns:host:5349").
    turn_urls: tuple[str, ...] = ()
    #: coturn `static-auth-secret`; empty disables TURN credentials.
    turn_secret: str = ""
    #: lifetime of a TURN credential, seconds.
    turn_ttl: int = 6 * 3600
    #: if not empty, the server gathers ICE candidates only on these addresses and refuses
    #: remote addresses outside these networks (CIDR or plain addresses, e.g. "127.0.0.1",
    #: "127.0.0.0/8", "::1"). Used for tests and local development on loopback.
    allowed_addresses: tuple[str, ...] = ()
    #: remote networks allowed besides public addresses (CIDR, e.g. a hospital's
    #: "10.20.0.0/16"). Private, loopback, link-local, multicast, reserved and documentation
    #: addresses are refused unless listed here or in `allowed_addresses`.
    allowed_networks: tuple[str, ...] = ()
    #: UDP ports the server's ICE sockets bind in (inclusive), for the firewall; None: any
    #: free port. Each worker of ``serve --workers`` gets its own slice (core/workers.py).
    udp_ports: tuple[int, int] | None = None
    #: seconds an ICE restart (a client offer with new ICE credentials) may take to nominate
    #: a new candidate pair before the connection is given up (`failed`).
    ice_restart_timeout: float = 30.0
    #: minimum interval between two keyframe requests sent to one publisher track, seconds.
    keyframe_min_interval: float = 0.3
    #: what a publisher track is told over its subscribers' allowances (docs/rtc.md,
    #: "Bandwidth per subscriber"): "max" serves the best-placed subscriber (weaker ones get
    #: the video paused, or a lower simulcast layer); "min" the weakest, "median" the typical.
    remb_mode: str = "max"
    #: ceilings sent to publishers, bits per second.
    max_camera_bitrate: int = 1_500_000
    max_screen_bitrate: int = 2_500_000
    #: what a simulcast camera may spend on all its layers together (the REMB it gets).
    max_simulcast_bitrate: int = 2_500_000
    #: accept simulcast camera tracks (several RID layers); False answers without simulcast.
    simulcast: bool = True
    #: client offers allowed per participant per 10 s window.
    max_negotiations_per_10s: int = 20
    #: tracks one participant may publish at once (camera, screen, audio and some slack).
    max_published_tracks: int = 4
    #: seconds between two `rtc:stats` events per room (0 disables them).
    stats_interval: float = 2.0
    #: active speaker: evaluation period and hold time, seconds.
    speaker_interval: float = 0.3
    speaker_hold: float = 1.0
    #: audio level (RFC 6464, -dBov, 0 loudest .. 127 silence) under which a participant is
    #: considered speaking.
    speaker_threshold: int = 60
    #: codecs accepted from publishers, in no particular order (names as in SDP).
    audio_codecs: tuple[str, ...] = field(default=("opus",))
    video_codecs: tuple[str, ...] = field(default=("VP8", "H264"))
