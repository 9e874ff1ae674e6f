// Message catalogues (French first, English second) and dates in Europe/Paris.
const LANGS = ["fr", "en"];
const STORE_KEY = "consilium.lang";
let lang = "fr";
let messages = {};
let fallback = {};

export function currentLang() {
  return lang;
}

async function fetchCatalogue(code) {
  const r = await fetch(`/static/i18n/${code}.json`, { credentials: "same-origin" });
  if (!r.ok) throw new Error(`catalogue ${code}: ${r.status}`);
  return r.json();
}

export async function loadCatalogue(requested) {
  let code = requested || localStorage.getItem(STORE_KEY) || "fr";
  if (!LANGS.includes(code)) code = "fr";
  fallback = await fetchCatalogue("fr");
  messages = code === "fr" ? fallback : await fetchCatalogue(code);
  lang = code;
  document.documentElement.lang = code;
}

export async function setLang(code) {
  localStorage.setItem(STORE_KEY, code);
  await loadCatalogue(code);
}

/** Translate a key; `{name}` placeholders are replaced from `vars`. */
/** Whether the catalogue (or its French fallback) holds `key`. */
export function hasMessage(key) {
  return key in messages || key in fallback;
}

export function t(key, vars) {
  let s = messages[key] ?? fallback[key];
  if (s === undefined) {
    console.warn("missing message", key);
    return key;
  }
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

const TZ = "Europe/Paris";
const locale = () => (lang === "fr" ? "fr-FR" : "en-GB");

function toDate(value) {
  if (!value) return null;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** 22/11/2026 */
export function formatDate(value) {
  const d = toDate(value);
  return d ? new Intl.DateTimeFormat(locale(), { timeZone: TZ, dateStyle: "short" }).format(d) : "";
}

/** 22/11/2026 21:05 */
export function formatDateTime(value) {
  const d = toDate(value);
  return d
    ? new Intl.DateTimeFormat(locale(), { timeZone: TZ, dateStyle: "short", timeStyle: "short" }).format(d)
    : "";
}

/** 21:05 */
export function formatTime(value) {
  const d = toDate(value);
  return d ? new Intl.DateTimeFormat(locale(), { timeZone: TZ, timeStyle: "short" }).format(d) : "";
}

/** A birth date (a calendar date, no time zone): "1986-02-07" → 07/02/1986. */
export function formatBirthDate(value) {
  if (!value) return "";
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(value);
  return m ? (lang === "fr" ? `${m[3]}/${m[2]}/${m[1]}` : `${m[3]}/${m[2]}/${m[1]}`) : value;
}
