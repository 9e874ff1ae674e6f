"""TURN settings that leave closed networks without a relay are pointed out at start-up
(docs/coturn.md: the turns: URL on 443 is the one that passes "HTTPS only" networks)."""

from __future__ import annotations

from rtc.config import RtcConfig
from rtc.ice import client_ice_servers, turn_warnings

TLS_443 = "turns:turn.example.org:443?transport=tcp"
UDP = "turn:turn.example.org:3478?transport=udp"


def test_a_complete_turn_setting_has_no_warning_and_offers_the_turns_url() -> None:
    config = RtcConfig(turn_urls=(UDP, TLS_443), turn_secret="s")
    assert turn_warnings(config) == []
    assert turn_warnings(RtcConfig()) == []  # no TURN at all: nothing to say
    servers = client_ice_servers(config, "participant-1")
    assert servers[0]["urls"] == [UDP, TLS_443]


def test_missing_secret_missing_turns_or_turns_off_443_are_pointed_out() -> None:
    assert "SECRET" in turn_warnings(RtcConfig(turn_urls=(UDP, TLS_443)))[0]
    assert "no turns: URL" in turn_warnings(RtcConfig(turn_urls=(UDP,), turn_secret="s"))[0]
    off = RtcConfig(turn_urls=("turns:turn.example.org:5349?transport=tcp",), turn_secret="s")
    assert "port 443" in turn_warnings(off)[0]
    v6 = RtcConfig(turn_urls=("turns:[2001:db8::1]:443?transport=tcp",), turn_secret="s")
    assert turn_warnings(v6) == []
