// Line icons drawn for Consilium on a 24×24 grid (stroke = currentColor).
import { html } from "./lib.js";

const P = {
  home: html`<path d="M3 11l9-7 9 7" /><path d="M5 10v10h5v-6h4v6h5V10" />`,
  folder: html`<path d="M3 6h6l2 2h10v11H3z" />`,
  plus: html`<path d="M12 5v14M5 12h14" />`,
  search: html`<circle cx="11" cy="11" r="6.5" /><path d="M16 16l5 5" />`,
  settings: html`<circle cx="12" cy="12" r="3" /><path d="M12 2v3M12 19v3M2 12h3M19 12h3M4.9 4.9l2.1 2.1M17 17l2.1 2.1M4.9 19.1L7 17M17 7l2.1-2.1" />`,
  logout: html`<path d="M15 4h4v16h-4" /><path d="M10 8l-4 4 4 4M6 12h10" />`,
  video: html`<rect x="2.5" y="6" width="13" height="12" rx="2" /><path d="M15.5 10l6-3v10l-6-3" />`,
  videoOff: html`<rect x="2.5" y="6" width="13" height="12" rx="2" /><path d="M15.5 10l6-3v10l-6-3M3 3l18 18" />`,
  mic: html`<rect x="9" y="3" width="6" height="11" rx="3" /><path d="M5 11a7 7 0 0014 0M12 18v3" />`,
  micOff: html`<rect x="9" y="3" width="6" height="11" rx="3" /><path d="M5 11a7 7 0 0014 0M12 18v3M3 3l18 18" />`,
  screen: html`<rect x="2.5" y="4" width="19" height="13" rx="1.5" /><path d="M8 21h8M12 17v4M12 13V8M9.5 10.5L12 8l2.5 2.5" />`,
  chat: html`<path d="M4 5h16v11H9l-5 4z" />`,
  users: html`<circle cx="9" cy="8" r="3.5" /><path d="M2.5 20c0-3.6 2.9-6 6.5-6s6.5 2.4 6.5 6" /><path d="M16 4.8a3.5 3.5 0 010 6.4M18 14.4c2 .8 3.5 2.8 3.5 5.6" />`,
  userPlus: html`<circle cx="9" cy="8" r="3.5" /><path d="M2.5 20c0-3.6 2.9-6 6.5-6s6.5 2.4 6.5 6M19 8v6M16 11h6" />`,
  file: html`<path d="M6 2.5h8l4 4V21.5H6z" /><path d="M14 2.5v4h4" />`,
  send: html`<path d="M21 3L10 14M21 3l-7 18-4-7-7-4z" />`,
  camera: html`<path d="M3 7h4l2-3h6l2 3h4v13H3z" /><circle cx="12" cy="13" r="4" />`,
  pip: html`<rect x="2.5" y="4" width="19" height="16" rx="1.5" /><rect x="12" y="12" width="7" height="5" />`,
  phone: html`<path d="M3 14.5c5-5 13-5 18 0l-2.5 3-3.5-1.5V13c-2-.7-4-.7-6 0v3l-3.5 1.5z" />`,
  shield: html`<path d="M12 2.5l8 3v6c0 5-3.5 8.5-8 10-4.5-1.5-8-5-8-10v-6z" /><path d="M8.5 12l2.5 2.5 4.5-5" />`,
  clock: html`<circle cx="12" cy="12" r="9" /><path d="M12 7v5l3 2" />`,
  check: html`<path d="M4 12.5l5 5L20 6.5" />`,
  x: html`<path d="M6 6l12 12M18 6L6 18" />`,
  alert: html`<path d="M12 3l10 18H2z" /><path d="M12 10v5M12 18v.5" />`,
  download: html`<path d="M12 3v12M7 10l5 5 5-5M4 20h16" />`,
  grid: html`<rect x="3" y="3" width="8" height="8" /><rect x="13" y="3" width="8" height="8" /><rect x="3" y="13" width="8" height="8" /><rect x="13" y="13" width="8" height="8" />`,
  speaker: html`<rect x="3" y="3" width="18" height="12" /><rect x="3" y="17" width="5" height="4" /><rect x="9.5" y="17" width="5" height="4" /><rect x="16" y="17" width="5" height="4" />`,
  lock: html`<rect x="4.5" y="10" width="15" height="11" rx="2" /><path d="M8 10V7a4 4 0 018 0v3" />`,
  door: html`<path d="M5 21V3h11v18M16 21h3M12.5 12h.5" />`,
  mail: html`<rect x="2.5" y="5" width="19" height="14" rx="1.5" /><path d="M3 6l9 7 9-7" />`,
  sms: html`<rect x="6" y="2.5" width="12" height="19" rx="2" /><path d="M10.5 18.5h3" />`,
  key: html`<circle cx="8" cy="14" r="4.5" /><path d="M11.5 11l9-9M17 5.5l2.5 2.5M15 7.5l2 2" />`,
  wifi: html`<path d="M2 9a15 15 0 0120 0M5 12.5a10 10 0 0114 0M8.5 16a5 5 0 017 0M12 19.5v.5" />`,
  bell: html`<path d="M6 16V11a6 6 0 0112 0v5l2 2H4z" /><path d="M10 20.5a2 2 0 004 0" />`,
  pen: html`<path d="M4 20l4-1 11-11-3-3L5 16z" />`,
  inbox: html`<path d="M3 13l3-8h12l3 8v6H3z" /><path d="M3 13h5l1.5 2.5h5L16 13h5" />`,
};

export function Icon({ name, label }) {
  return html`<svg class="icon" viewBox="0 0 24 24" aria-hidden=${label ? undefined : "true"} role=${label ? "img" : undefined} aria-label=${label}>${P[name] || P.x}</svg>`;
}
