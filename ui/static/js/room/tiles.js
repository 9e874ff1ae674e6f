// The one key of a video tile, used by everything that names a tile: the page's remote
// streams and its rendered tiles (Preact keys), the VisibilityTracker, and the pause sync
// that matches the server's tracks against hidden tiles.
//
// A tile is a participant's camera (their microphone plays with it) or their screen share:
// `${participant_id}:camera` or `${participant_id}:screen`. The participant id is what stays
// the same across a rejoin (the server resumes the same participant within its grace
// period; past it, the participant is a new one and so is its tile); stream and track ids do
// not (a media restart brings new ones). One's own tiles are under LOCAL, whatever id the
// server gives us, so a rejoin as a new participant never remounts one's own video.
// No DOM and no imports: Node's test runner loads this module as it is.

/** The participant id under which one's own tiles are keyed. */
export const LOCAL = "me";

/** "screen" for a screen share's video; anything else (camera, microphone, a screen's
 * audio) belongs to the camera tile. */
export function tileSource(source, kind) {
  return source === "screen" && kind === "video" ? "screen" : "camera";
}

/** The tile of participant `participantId`'s camera ("camera") or screen share ("screen"). */
export function tileKey(participantId, source = "camera") {
  return `${participantId}:${source === "screen" ? "screen" : "camera"}`;
}

/** The tile a server track description {participant_id, source, kind} plays in. */
export function trackTileKey({ participant_id, source, kind }) {
  return tileKey(participant_id, tileSource(source, kind));
}

/** The participant id of a tile key. */
export function tileParticipant(key) {
  return key.slice(0, key.lastIndexOf(":"));
}
