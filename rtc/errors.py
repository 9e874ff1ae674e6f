"""The one exception type the SFU raises to its callers."""

from __future__ import annotations

from typing import Final

BAD_SDP: Final = "bad_sdp"
NO_SUPPORTED_CODEC: Final = "no_supported_codec"
UNKNOWN_PARTICIPANT: Final = "unknown_participant"
UNKNOWN_TRACK: Final = "unknown_track"
BAD_CANDIDATE: Final = "bad_candidate"
CANDIDATE_NOT_ALLOWED: Final = "candidate_not_allowed"
GLARE: Final = "glare"
WRONG_STATE: Final = "wrong_state"
RATE_LIMITED: Final = "rate_limited"
ALREADY_JOINED: Final = "already_joined"
SNAPSHOT_FAILED: Final = "snapshot_failed"
TOO_MANY_TRACKS: Final = "too_many_tracks"
CLOSED: Final = "closed"
OFFER_FAILED: Final = "offer_failed"
ICE_RESTART_UNSUPPORTED: Final = "ice_restart_unsupported"


class RtcError(Exception):
    """An error the signalling layer turns into an error acknowledgement.

    `code` is stable (one of the constants of this module); `message` is for humans.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def as_ack(self) -> dict[str, object]:
        return {"ok": False, "error": {"code": self.code, "message": self.message}}
