"""Chat tests use the live-room fixtures of tests/rooms (short grace period, sockets, browsers)."""

from tests.rooms.conftest import app, browsers, create_room, sockets

__all__ = ["app", "browsers", "create_room", "sockets"]
