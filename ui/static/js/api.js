// The JSON API client: same-origin cookies, the CSRF header on every change, problem+json
// errors turned into ApiError, and a 401 anywhere outside the sign-in flow sends the user back
// to the login page.
const BASE = "/api/v1";
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || `http_${status}`;
    this.body = body || {};
  }
}

export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)consilium_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

const listeners = new Set();
/** Called with the ApiError when the session is missing or expired. */
export function onUnauthorized(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export async function request(method, path, { json, form, raw, rawType, query, signal, quiet401 } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (raw !== undefined) {
    headers["Content-Type"] = rawType || raw.type || "application/octet-stream";
    body = raw;
  } else if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  if (UNSAFE.has(method)) {
    const token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  let url = path.startsWith("/") && !path.startsWith(BASE) ? BASE + path : path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    const s = q.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  let r;
  try {
    r = await fetch(url, { method, headers, body, credentials: "same-origin", signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { code: "network_error", detail: String(e) });
  }
  if (r.status === 204) return null;
  const type = r.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await r.json().catch(() => null) : await r.text();
  if (!r.ok) {
    const err = new ApiError(r.status, typeof data === "object" ? data : { detail: data });
    if (r.status === 401 && !quiet401 && !path.startsWith("/auth/")) listeners.forEach((fn) => fn(err));
    throw err;
  }
  return data;
}

export const api = {
  get: (path, opts) => request("GET", path, opts),
  post: (path, json, opts) => request("POST", path, { ...opts, json }),
  put: (path, json, opts) => request("PUT", path, { ...opts, json }),
  patch: (path, json, opts) => request("PATCH", path, { ...opts, json }),
  del: (path, opts) => request("DELETE", path, opts),
  upload: (path, form, opts) => request("POST", path, { ...opts, form }),
  putFile: (path, file, opts) => request("PUT", path, { ...opts, raw: file }),
};

/** Upload with progress (fetch has no upload progress): XMLHttpRequest with the same rules. */
export function uploadWithProgress(path, form, onProgress, method = "POST") {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, BASE + path);
    xhr.setRequestHeader("Accept", "application/json");
    const token = csrfToken();
    if (token) xhr.setRequestHeader("X-CSRF-Token", token);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data));
    };
    xhr.onerror = () => reject(new ApiError(0, { code: "network_error" }));
    xhr.send(form);
  });
}

/** True when the API answered that this route does not exist yet (feature not deployed). */
export function isMissing(err) {
  return err instanceof ApiError && (err.status === 404 || err.status === 405) && err.code !== "dossier_not_found";
}
