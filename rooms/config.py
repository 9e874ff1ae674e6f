"""Settings of the live layer (``CONSILIUM_ROOM_*``), read once per process."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RoomSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONSILIUM_ROOM_", extra="ignore")

    # A participant whose connection dropped keeps their place (same participant id) this long.
    grace_seconds: float = Field(10.0, ge=0.1, le=300)
    # Largest event payload accepted, as JSON (bigger: error ack "too_large").
    max_event_bytes: int = Field(16_384, ge=1024, le=1_000_000)
    # Any event: sustained rate and burst per connection (beyond: error ack "rate_limited").
    events_per_second: float = Field(30.0, gt=0)
    events_burst: int = Field(60, ge=1)
    # How often each connection's session is checked (and kept alive while in a call).
    session_check_seconds: float = Field(60.0, ge=0.1)
    # How often each node ends the guest sessions of expired invitations (and closed rooms).
    guest_check_seconds: float = Field(30.0, ge=0.1)
