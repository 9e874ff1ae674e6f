"""Session descriptions: what the SFU accepts from a client, and how it shapes its own offers.

Everything goes through aiortc's SDP parser (`aiortc.sdp.SessionDescription`): a client's
description is parsed once and checked (size, ICE and DTLS parameters, codecs, m-lines the
server owns, number of published tracks); the server's own offers are parsed, their header
extension ids and published codecs adjusted, and serialised again.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from aiortc import RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpHeaderExtensionParameters

from rtc.aiortc_internals import SessionDescription
from rtc.bandwidth import TRANSPORT_CC_URI
from rtc.config import RtcConfig
from rtc.errors import BAD_SDP, NO_SUPPORTED_CODEC, TOO_MANY_TRACKS, RtcError

MAX_SDP_LENGTH = 64 * 1024
#: RFC 8839 section 5.4: ice-ufrag is 4 to 256 ice-chars, ice-pwd 22 to 256
_ICE_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")
_ICE_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")
#: one-byte RTP header extension ids (RFC 8285): 1 to 14
_EXTENSION_IDS = range(1, 15)


def parse(sdp: str) -> SessionDescription:
    try:
        return SessionDescription.parse(sdp)
    except Exception as exc:
        raise RtcError(BAD_SDP, f"malformed SDP: {exc}") from exc


def check_client_description(
    sdp: str, kind: str, config: RtcConfig, server_mids: Collection[str]
) -> SessionDescription:
    """Refuse a client offer or answer that would put aiortc in a bad state.

    `server_mids` are the m-lines the server created (it sends on them): a client offer may
    not send on one of those.
    """
    if not isinstance(sdp, str) or not sdp.strip():
        raise RtcError(BAD_SDP, f"empty {kind}")
    if len(sdp) > MAX_SDP_LENGTH:
        raise RtcError(BAD_SDP, f"{kind} larger than {MAX_SDP_LENGTH} bytes")
    description = parse(sdp)
    if not description.media:
        raise RtcError(BAD_SDP, "the SDP has no media section")
    if kind == "offer":
        for media in description.media:
            if media.rtp.muxId in server_mids and media.direction in ("sendonly", "sendrecv"):
                raise RtcError(
                    BAD_SDP,
                    f"m-line {media.rtp.muxId} is the server's; publish on a new one "
                    "(addTransceiver(track, {direction: 'sendonly'}), not addTrack)",
                )
        sending = [
            m
            for m in description.media
            if m.kind in ("audio", "video")
            and m.port != 0
            and m.direction in ("sendonly", "sendrecv")
            and m.rtp.muxId not in server_mids
        ]
        if len(sending) > config.max_published_tracks:
            raise RtcError(
                TOO_MANY_TRACKS,
                f"{len(sending)} tracks offered, at most {config.max_published_tracks}",
            )
    if all(m.port == 0 for m in description.media):
        raise RtcError(BAD_SDP, "every m-line is rejected (port 0): send rtc:leave instead")
    for media in description.media:
        if media.port == 0:
            continue  # rejected: may come without ICE or DTLS lines (see accept_rejected)
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise RtcError(BAD_SDP, "ICE credentials are missing")
        if not _ICE_UFRAG.fullmatch(media.ice.usernameFragment) or not _ICE_PWD.fullmatch(
            media.ice.password
        ):
            raise RtcError(
                BAD_SDP, "ICE ufrag must be 4 to 256 ice-chars and pwd 22 to 256 (RFC 8839)"
            )
        if media.dtls is None or not media.dtls.fingerprints:
            raise RtcError(BAD_SDP, "DTLS fingerprint is missing")
        if media.kind not in ("audio", "video") or media.port == 0:
            continue
        allowed = config.audio_codecs if media.kind == "audio" else config.video_codecs
        names = {c.name.lower() for c in media.rtp.codecs}
        if not names & {a.lower() for a in allowed}:
            raise RtcError(
                NO_SUPPORTED_CODEC,
                f"{media.kind} section {media.rtp.muxId} offers none of {list(allowed)}",
            )
    return description


def rejected_mids(description: SessionDescription) -> set[str]:
    """The m-sections a client rejected (port 0: a stopped transceiver)."""
    return {m.rtp.muxId for m in description.media if m.port == 0 and m.rtp.muxId}


def accept_rejected(
    description: SessionDescription, previous: SessionDescription | None
) -> set[str]:
    """Make a client description with rejected m-sections one aiortc can apply; their mids.

    aiortc knows no rejected m-section: it wants ICE and DTLS lines and codecs on every one,
    and would give an m-line left out of BUNDLE a transport of its own. So, for aiortc only,
    a rejected m-section becomes what aiortc saw last for that mid (or itself), `inactive`,
    with the transport lines of a live m-section, and stays in the BUNDLE group. The client
    gets the JSEP form back from :func:`reject` (port 0, out of BUNDLE).
    """
    rejected = rejected_mids(description)
    if not rejected:
        return rejected
    live = next(m for m in description.media if m.port != 0)
    before = {m.rtp.muxId: m for m in previous.media} if previous is not None else {}
    for index, media in enumerate(description.media):
        mid = media.rtp.muxId
        if mid not in rejected:
            continue
        old = before.get(mid)
        if old is not None and old.kind == media.kind:
            media = copy.deepcopy(old)
        if media.kind in ("audio", "video") and not media.rtp.codecs:
            raise RtcError(BAD_SDP, f"rejected m-line {mid} has no codec the server knows")
        media.port = live.port
        media.host = live.host
        media.direction = "inactive"
        media.ice = copy.deepcopy(live.ice)
        media.dtls = copy.deepcopy(live.dtls)
        media.ice_candidates = []
        media.ice_candidates_complete = False
        media.rtcp_mux = True
        description.media[index] = media
    for group in description.group:
        if group.semantic == "BUNDLE":
            group.items = [m.rtp.muxId for m in description.media if m.rtp.muxId]
    return rejected


def reject(description: SessionDescription, mids: Collection[str]) -> None:
    """Write the server's description with these m-sections rejected (JSEP: port 0,
    `inactive`, no candidates, out of the BUNDLE group)."""
    if not mids:
        return
    for media in description.media:
        if media.rtp.muxId in mids:
            media.port = 0
            media.direction = "inactive"
            media.ice_candidates = []
            media.ice_candidates_complete = False
    for group in description.group:
        if group.semantic == "BUNDLE":
            group.items = [mid for mid in group.items if mid not in mids]


class ExtmapRegistry:
    """RTP header extension ids of one connection: once an id means a URI, it always does.

    aiortc numbers extensions from its own table in every offer it creates, and browsers
    (Chrome since M140) refuse an offer that gives an id another meaning than before. The
    ids the client chose are learnt from its descriptions; the server's offers are rewritten
    to use them, new URIs getting free ids.
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def learn(self, description: SessionDescription) -> None:
        for media in description.media:
            for extension in media.rtp.headerExtensions:
                if extension.uri not in self.ids and extension.id not in self.ids.values():
                    self.ids[extension.uri] = extension.id

    def rewrite(self, description: SessionDescription) -> None:
        """Give the extensions of a server offer the ids this connection already uses."""
        for media in description.media:
            kept = []
            for extension in media.rtp.headerExtensions:
                ext_id = self.ids.get(extension.uri)
                if ext_id is None:
                    used = set(self.ids.values())
                    if extension.id not in used:
                        ext_id = extension.id  # its own id is free: keep it
                    else:
                        ext_id = next((i for i in _EXTENSION_IDS if i not in used), None)
                    if ext_id is None:
                        continue  # no one-byte id left: leave this extension out
                    self.ids[extension.uri] = ext_id
                extension = copy.copy(extension)
                extension.id = ext_id
                kept.append(extension)
            media.rtp.headerExtensions = kept


def pin_codecs(
    description: SessionDescription, codecs_by_mid: Mapping[str, Sequence[RTCRtpCodecParameters]]
) -> None:
    """Put back, on the m-lines listed, the codecs and payload types already agreed.

    aiortc's createOffer lists its whole codec table, with its own payload type numbers, on
    every m-line: the client would switch codec or payload type under a forwarder (and its
    subscribers) bound to the agreed ones.
    """
    for media in description.media:
        codecs = codecs_by_mid.get(media.rtp.muxId or "")
        if codecs:
            media.rtp.codecs = [copy.deepcopy(c) for c in codecs]
            media.fmt = [c.payloadType for c in codecs]


def codec_key(name: str, parameters: Mapping[str, Any]) -> tuple[str, str]:
    """Codecs that can share an m-line without transcoding: same name (and H.264 profile)."""
    profile = str(parameters.get("profile-level-id", "")).lower()[:4] if name == "H264" else ""
    return name.upper(), profile


def capability_for(
    kind: str, name: str, parameters: Mapping[str, Any]
) -> RTCRtpCodecCapability | None:
    """The local codec capability that carries this codec unchanged."""
    capabilities = RTCRtpSender.getCapabilities(kind)
    wanted = codec_key(name, parameters)
    for capability in capabilities.codecs:
        if codec_key(capability.name, capability.parameters) == wanted:
            return capability
    for capability in capabilities.codecs:  # e.g. an H.264 profile we do not list: same name
        if capability.name.upper() == wanted[0]:
            return capability
    return None


# --- simulcast (RFC 8853 / RFC 8851): aiortc's parser drops these lines, so raw text here ---

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
_RID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _sections(text: str) -> list[list[str]]:
    """Session part, then one list of lines per m-section."""
    sections: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _mid_of(section: list[str]) -> str | None:
    return next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)


def simulcast_offer(
    text: str, max_layers: int, max_rid_length: int
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The layers a client offers to send per video m-line: ({mid: [rid, ...]}, {mid: why
    refused}). A section whose simulcast cannot be accepted (a RID not declared with
    `a=rid:... send`, a bad RID, more than `max_layers`, no RID header extension) is refused
    and gets an answer without simulcast: the client then sends its first encoding only."""
    accepted: dict[str, list[str]] = {}
    refused: dict[str, str] = {}
    for section in _sections(text)[1:]:
        if not section[0].startswith("m=video") or section[0].split()[1:2] == ["0"]:
            continue
        mid = _mid_of(section)
        simulcast = [line for line in section if line.startswith("a=simulcast:")]
        if mid is None or not simulcast:
            continue
        declared = set()
        for line in section:
            if line.startswith("a=rid:"):
                parts = line[6:].split()
                if len(parts) >= 2 and parts[1] == "send":
                    declared.add(parts[0])
        words = simulcast[0][len("a=simulcast:") :].split()
        rids: list[str] = []
        why = ""
        if len(words) < 2 or words[0] != "send":
            why = "a=simulcast must offer to send"
        else:
            for alternative in words[1].split(";"):
                rid = alternative.split(",")[0].lstrip("~")
                if not rid or len(rid) > max_rid_length or not set(rid) <= _RID_CHARS:
                    why = f"bad RID {rid!r}"
                elif rid not in declared:
                    why = f"RID {rid!r} is not declared with a=rid:{rid} send"
                elif rid in rids:
                    why = f"RID {rid!r} listed twice"
                rids.append(rid)
        if not why and len(rids) > max_layers:
            why = f"{len(rids)} layers offered, at most {max_layers}"
        if not why and not any(RID_URI in line for line in section if line.startswith("a=extmap")):
            why = "the RID header extension (sdes:rtp-stream-id) is not offered"
        if why:
            refused[mid] = why
        elif len(rids) > 1:
            accepted[mid] = rids
    return accepted, refused


def add_simulcast(text: str, rids_by_mid: Mapping[str, Sequence[str]]) -> str:
    """Our description (answer or offer) with `a=rid:... recv` and `a=simulcast:recv` on the
    m-lines whose layers we receive (aiortc writes neither)."""
    if not rids_by_mid:
        return text
    sections = _sections(text)
    for section in sections[1:]:
        rids = rids_by_mid.get(_mid_of(section) or "")
        if (
            not rids
            or section[0].split()[1:2] == ["0"]
            or any(line.startswith("a=simulcast:") for line in section)
        ):
            continue
        section.extend(f"a=rid:{rid} recv" for rid in rids)
        section.append("a=simulcast:recv " + ";".join(rids))
    return "\r\n".join(line for section in sections for line in section) + "\r\n"


def offer_transport_cc(description: SessionDescription, mids: Collection[str]) -> None:
    """Offer transport-wide congestion control on the server's m-lines (`mids`): the
    extension the server writes on every packet it sends, and `a=rtcp-fb:<pt> transport-cc`
    so the client sends feedback. A client that does not know it (aiortc) leaves it out of
    its answer, and the server then numbers nothing for it (REMB stays its feedback)."""
    for media in description.media:
        if media.rtp.muxId not in mids or media.port == 0:
            continue
        _add_transport_cc(media, _TWCC_DEFAULT_ID)


def answer_transport_cc(
    answer: SessionDescription, offer: SessionDescription, mids: Collection[str]
) -> None:
    """Keep transport-cc in the server's answer on its own m-lines (`mids`) where the client's
    offer has it (aiortc's answer drops extensions it does not know)."""
    offered = transport_cc_ids(offer)
    for media in answer.media:
        ext_id = offered.get(media.rtp.muxId or "")
        if ext_id and media.rtp.muxId in mids and media.port != 0:
            _add_transport_cc(media, ext_id)


def transport_cc_ids(description: SessionDescription) -> dict[str, int]:
    """mid → transport-cc extension id, for the m-lines of `description` that carry it."""
    ids = {}
    for media in description.media:
        if media.port == 0:
            continue
        for extension in media.rtp.headerExtensions:
            if extension.uri == TRANSPORT_CC_URI:
                ids[media.rtp.muxId or ""] = extension.id
    return ids


_TWCC_DEFAULT_ID = 5


def _add_transport_cc(media: Any, ext_id: int) -> None:
    if not any(e.uri == TRANSPORT_CC_URI for e in media.rtp.headerExtensions):
        media.rtp.headerExtensions.append(
            RTCRtpHeaderExtensionParameters(id=ext_id, uri=TRANSPORT_CC_URI)
        )
    for codec in media.rtp.codecs:
        if codec.name.lower() in ("rtx", "red", "ulpfec"):
            continue
        if not any(f.type == "transport-cc" for f in codec.rtcpFeedback):
            codec.rtcpFeedback.append(RTCRtcpFeedback(type="transport-cc"))
