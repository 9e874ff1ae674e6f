// What this page actually receives from each participant, for the network-quality bars: the
// server's report (rtc:stats) says how its sending goes, not whether pictures reach us. Fed
// once a second with the inbound-rtp statistics of a participant's camera video (frames
// decoded, packets received and lost), it says « bon », « moyen », « faible » or
// « pas d'image » (no frame decoded for more than STALL_MS while a picture is expected).
// No DOM and no imports: Node's test runner loads this module as it is.

/** No new frame for this long, while the camera is on and the tile seen: « pas d'image ». */
export const STALL_MS = 2000;

const ORDER = { good: 0, fair: 1, poor: 2, none: 3 };

/** The worse of two qualities (null: unknown). */
export function worse(a, b) {
  if (!a) return b || null;
  if (!b) return a;
  return ORDER[b] > ORDER[a] ? b : a;
}

/**
 * One step: `prev` the previous state (or null), `sample` {framesDecoded, packetsReceived,
 * packetsLost, expectVideo}, `now` in ms. Returns {state, quality}; quality is null until
 * two samples were seen.
 */
export function receptionStep(prev, sample, now) {
  const frames = Number(sample.framesDecoded) || 0;
  const received = Number(sample.packetsReceived) || 0;
  const lost = Math.max(0, Number(sample.packetsLost) || 0);
  if (!prev) return { state: { frames, received, lost, at: now, progressAt: now }, quality: null };
  const progressed = frames > prev.frames;
  const progressAt = progressed || !sample.expectVideo ? now : prev.progressAt;
  const state = { frames, received, lost, at: now, progressAt };
  if (sample.expectVideo && now - progressAt > STALL_MS) return { state, quality: "none" };
  const dLost = Math.max(0, lost - prev.lost);
  const dReceived = Math.max(0, received - prev.received);
  const loss = dLost + dReceived > 0 ? dLost / (dLost + dReceived) : 0;
  const seconds = Math.max(0.001, (now - prev.at) / 1000);
  const fps = (frames - prev.frames) / seconds;
  let quality = "good";
  if (loss > 0.08 || (sample.expectVideo && fps < 5)) quality = "poor";
  else if (loss > 0.02 || (sample.expectVideo && fps < 10)) quality = "fair";
  return { state, quality };
}

/**
 * Match a getStats() report to the tiles: `remote` maps a tile key to its tracks (the page's
 * state.remote). Returns {tileKey: {framesDecoded, packetsReceived, packetsLost}} for the
 * video of each tile that has an inbound-rtp entry.
 */
export function inboundVideoByTile(report, remote) {
  const byTrack = new Map();
  for (const [key, tracks] of Object.entries(remote || {})) {
    for (const tr of tracks || []) if (tr && tr.kind === "video") byTrack.set(tr.id, key);
  }
  const out = {};
  if (!report) return out;
  report.forEach((s) => {
    if (s.type !== "inbound-rtp" || s.kind !== "video") return;
    const key = byTrack.get(s.trackIdentifier);
    if (!key) return;
    out[key] = { framesDecoded: s.framesDecoded || 0, packetsReceived: s.packetsReceived || 0, packetsLost: s.packetsLost || 0 };
  });
  return out;
}
