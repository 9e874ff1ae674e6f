// Who is signed in: loaded from /auth/session, shared by every page. The name and role (no
// token) are remembered so that the installed app still opens offline on the last searches.
import { api } from "./api.js";
import { clearRecentSearches } from "./recent.js";
import { forgetAllPending } from "./upload.js";
import { useEffect, useState } from "./lib.js";

const WHO = "consilium.who.v1";
let current; // undefined = not loaded yet, null = signed out
const subscribers = new Set();

function publish(value) {
  current = value;
  if (value && !value.offline) {
    const { kind, id, name, role } = value;
    localStorage.setItem(WHO, JSON.stringify({ kind, id, name, role }));
  }
  subscribers.forEach((fn) => fn(value));
}

export async function refreshSession() {
  try {
    publish(await api.get("/auth/session", { quiet401: true }));
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      publish(null);
    } else if (err.status === 0 || !navigator.onLine) {
      const who = JSON.parse(localStorage.getItem(WHO) || "null");
      publish(who ? { ...who, offline: true } : null);
    } else {
      throw err;
    }
  }
  return current;
}

export function setSession(value) {
  publish(value);
}

export function getSession() {
  return current;
}

export function useSession() {
  const [value, setValue] = useState(current);
  useEffect(() => {
    subscribers.add(setValue);
    if (current === undefined) refreshSession().catch(() => publish(null));
    return () => subscribers.delete(setValue);
  }, []);
  return value;
}

/** End the session. Returns the URL to leave for when the provider's session must end too
 * (a Pro Santé Connect session: its end_session_endpoint), else null. */
export async function signOut() {
  let redirect = null;
  try {
    if (current && current.sso) {
      redirect = (await api.post("/auth/oidc/logout")).redirect;
    } else {
      await api.post("/auth/logout");
    }
  } finally {
    clearRecentSearches(); // patient names stay on a shared computer only while signed in
    forgetAllPending(); // likewise the names of files left half-uploaded
    localStorage.removeItem(WHO);
    publish(null);
  }
  return redirect && redirect !== "/app/login" ? redirect : null;
}
