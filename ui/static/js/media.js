// Camera, microphone and browser checks shared by the device test and the room.

/** The browsers supported for calls (seed 001): Chrome/Firefox on a computer (not Safari on
 * macOS), Safari on iPhone, Chrome on Android. */
export function browserSupport(ua = navigator.userAgent) {
  const iphone = /iPhone|iPad|iPod/.test(ua);
  const android = /Android/.test(ua);
  const platform = iphone ? "iphone" : android ? "android" : "desktop";
  let browser = "other";
  if (/Edg\//.test(ua)) browser = "Edge";
  else if (/Firefox\/|FxiOS/.test(ua)) browser = "Firefox";
  else if (/Chrome\/|CriOS|Chromium\//.test(ua)) browser = "Chrome";
  else if (/Safari\//.test(ua)) browser = "Safari";
  const supported =
    (platform === "desktop" && (browser === "Chrome" || browser === "Firefox" || browser === "Edge")) ||
    (platform === "iphone" && browser === "Safari") ||
    (platform === "android" && browser === "Chrome");
  const features = {
    webrtc: typeof RTCPeerConnection === "function",
    media: !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia),
    websocket: typeof WebSocket === "function",
    secure: window.isSecureContext,
  };
  return { platform, browser, supported, features, ok: supported && Object.values(features).every(Boolean) };
}

export async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return { cameras: [], microphones: [], speakers: [] };
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === "videoinput"),
    microphones: all.filter((d) => d.kind === "audioinput"),
    speakers: all.filter((d) => d.kind === "audiooutput"),
  };
}

export const VIDEO_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 24, max: 30 } };

export async function openMedia({ cameraId, microphoneId, video = true, audio = true } = {}) {
  return navigator.mediaDevices.getUserMedia({
    audio: audio ? { deviceId: microphoneId ? { exact: microphoneId } : undefined, echoCancellation: true, noiseSuppression: true } : false,
    video: video ? { ...VIDEO_CONSTRAINTS, deviceId: cameraId ? { exact: cameraId } : undefined } : false,
  });
}

export function stopStream(stream) {
  if (stream) stream.getTracks().forEach((t) => t.stop());
}

/** Calls `onLevel(0..1)` about 20 times a second with the microphone's level; returns stop(). */
export function watchLevel(stream, onLevel) {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx || !stream || !stream.getAudioTracks().length) return () => {};
  const ctx = new Ctx();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const data = new Uint8Array(analyser.fftSize);
  const id = setInterval(() => {
    analyser.getByteTimeDomainData(data);
    let sum = 0;
    for (const v of data) sum += ((v - 128) / 128) ** 2;
    onLevel(Math.min(1, Math.sqrt(sum / data.length) * 4));
  }, 50);
  return () => {
    clearInterval(id);
    ctx.close();
  };
}

/** A short two-tone chime (no audio file to fetch): a guest arrived in the lobby. */
export function chime() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  const ctx = new Ctx();
  const now = ctx.currentTime;
  [660, 880].forEach((freq, i) => {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + i * 0.18);
    gain.gain.exponentialRampToValueAtTime(0.2, now + i * 0.18 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.18 + 0.3);
    osc.connect(gain).connect(ctx.destination);
    osc.start(now + i * 0.18);
    osc.stop(now + i * 0.18 + 0.32);
  });
  setTimeout(() => ctx.close(), 1000);
}

/** Remember the devices chosen in the test, for the room (this tab only). */
export function saveDeviceChoice(choice) {
  sessionStorage.setItem("consilium.devices", JSON.stringify(choice));
}
export function loadDeviceChoice() {
  try {
    return JSON.parse(sessionStorage.getItem("consilium.devices") || "{}");
  } catch {
    return {};
  }
}
