// Choosing a new password from the link received by e-mail (/app/reset-password#token=…).
// The token travels in the URL's fragment, which browsers never send to a server; the page
// takes it out of the address bar at once, so it stays neither in the history nor on screen.
import { api } from "../api.js";
import { Alert, errorMessage, useTitle } from "../components.js";
import { t } from "../i18n.js";
import { html, useState } from "../lib.js";
import { AuthFrame } from "./login.js";

const MIN_LENGTH = 10; // core/passwords.py

function takeToken() {
  const m = /[#&]token=([A-Za-z0-9_.-]+)/.exec(location.hash);
  if (m) history.replaceState(null, "", location.pathname);
  return m ? m[1] : null;
}

export function ResetPasswordPage() {
  useTitle(t("reset.title"));
  const [token] = useState(takeToken);
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(false);
  const mismatch = confirm && password !== confirm;
  const short = password && password.length < MIN_LENGTH;
  const submit = async (e) => {
    e.preventDefault();
    if (mismatch || short) return;
    setBusy(true);
    setError(null);
    try {
      await api.post("/auth/password/reset", { token, password });
      setDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const dead = error && (error.code === "invalid_token" || error.code === "token_expired");
  let body;
  if (done) {
    body = html`<${Alert} kind="success">${t("reset.done")}<//>
      <a class="btn btn-primary btn-block" href="/app/login">${t("reset.sign_in")}</a>`;
  } else if (!token || dead) {
    body = html`<${Alert}>${token ? errorMessage(error) : t("error.invalid_token")}<//>
      <a class="btn btn-primary btn-block" href="/app/login?forgot=1">${t("reset.new_link")}</a>`;
  } else {
    body = html`<form onSubmit=${submit}>
      <${Alert}>${error && errorMessage(error)}<//>
      <div class="field">
        <label for="new-password">${t("reset.new_password")}</label>
        <input id="new-password" class="input" type="password" autocomplete="new-password" required minlength=${MIN_LENGTH}
          value=${password} onInput=${(e) => setPassword(e.target.value)} aria-describedby="new-password-hint" aria-invalid=${short ? "true" : undefined} />
        <span id="new-password-hint" class="hint">${t("reset.rule", { min: MIN_LENGTH })}</span>
      </div>
      <div class="field">
        <label for="confirm-password">${t("reset.confirm_password")}</label>
        <input id="confirm-password" class="input" type="password" autocomplete="new-password" required
          value=${confirm} onInput=${(e) => setConfirm(e.target.value)} aria-invalid=${mismatch ? "true" : undefined} aria-describedby="confirm-hint" />
        <span id="confirm-hint" class="hint" role="status">${mismatch ? t("reset.mismatch") : ""}</span>
      </div>
      <button class="btn btn-primary btn-block" type="submit" disabled=${busy || !password || !confirm || mismatch || short}>${busy ? t("common.wait") : t("reset.save")}</button>
    </form>`;
  }
  return html`<${AuthFrame}>
    <h1>${t("reset.title")}</h1>
    <p class="lead">${t("reset.lead")}</p>
    ${body}
  <//>`;
}
