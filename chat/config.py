"""Chat settings (``CONSILIUM_CHAT_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ChatSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONSILIUM_CHAT_", extra="ignore")

    # Flood control per connection: sustained messages per second and burst.
    messages_per_second: float = Field(3.0, gt=0)
    burst: int = Field(10, ge=1)
    history_page: int = Field(50, ge=1, le=200)
