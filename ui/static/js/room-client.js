// The live side of a room, without any UI, in three parts wired together here:
//
// - room/live-room.js    LiveRoom: the Socket.IO connection (presence, lobby, moderation,
//                        chat, rtc:* signalling), the rejoin after a drop and the connection
//                        status the page shows (connected | reconnecting | failed);
// - room/media-session.js MediaSession: the RTCPeerConnection with the SFU, offers and
//                        answers, and the restart of the media when it breaks;
// - room/pause-sync.js   PauseSync: rtc:pause / rtc:resume for the remote videos whose tile
//                        the VisibilityTracker (room/visibility.js) reports hidden.
//
// The page holds a RoomClient and talks to its parts through their methods and events
// (`client.live.on(…)`, `client.media.on(…)`); it never writes into them. Every client event
// is acknowledged {ok, error?} (LiveRoom.call).
import { LiveRoom } from "./room/live-room.js";
import { MediaSession } from "./room/media-session.js";
import { PauseSync } from "./room/pause-sync.js";

export { LiveError, uuid4 } from "./room/common.js";
export { GIVE_UP_MS } from "./room/live-room.js";
export { VisibilityTracker } from "./room/visibility.js";

export class RoomClient {
  constructor(roomId, { giveUpAfter } = {}) {
    let media = null;
    let pauses = null;
    // What the socket's life means for the media: "reconnecting" while the media is down,
    // no media once the stay is over, the media kept (or restarted) after a rejoin.
    const live = new LiveRoom(roomId, {
      giveUpAfter,
      media: {
        down: () => media.down,
        end: () => media.close(),
        rejoined: async (ack, sameParticipant) => {
          if (ack.status !== "joined") {
            // back in the lobby (a guest whose admission is gone): no media until admitted again
            media.stop();
            return;
          }
          await media.resync(sameParticipant);
          pauses.sync();
        },
        retry: () => {
          if (!media.wanted) return false;
          media.restart("retry");
          return true;
        },
      },
    });
    media = new MediaSession(live);
    pauses = new PauseSync({ call: (event, data) => live.call(event, data), ready: () => media.connected && live.inRoom });
    media.on("tracks-map", (tracks) => pauses.setTracks(tracks));
    media.on("dropped", () => pauses.reset());
    media.on("answered", () => pauses.sync());
    media.on("ready", () => pauses.sync());
    media.on("down", () => live.updateStatus());
    this.live = live;
    this.media = media;
    this.pauses = pauses;
    Object.freeze(this);
  }
}
