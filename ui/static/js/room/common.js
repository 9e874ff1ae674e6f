// What the room's connection and the pages' own live connection (live.js) share: the error a
// refused acknowledgement becomes, and the ids the client gives the messages it sends.

export class LiveError extends Error {
  constructor(error) {
    super((error && error.message) || "refused");
    this.code = (error && error.code) || "refused";
  }
}

export function uuid4() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
