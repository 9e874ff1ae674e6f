// Sign-in (seed 000, 1.1.3): e-mail and password, then the second factor: a one-time code by
// e-mail or SMS ("Recevoir mon code"), or the authenticator app, or a recovery code.
// Or Pro Santé Connect (seed 000, 1.1.1–1.1.2: CPS card or e-CPS app) when it is configured:
// its button leaves for the provider, which sends the browser back signed in (no code), or
// here with ?psc_error=<code>, or with ?psc=link to attach the identity to an account.
import { api } from "../api.js";
import { Alert, LangSwitch, errorMessage, useTitle } from "../components.js";
import { t } from "../i18n.js";
import { Icon } from "../icons.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { navigate } from "../router.js";
import { setSession } from "../session.js";

function safeNext(query) {
  const next = query.get("next") || "/app/";
  return next.startsWith("/app/") || next.startsWith("/join/") ? next : "/app/";
}

function ForgotStep({ initialEmail, onBack }) {
  const [email, setEmail] = useState(initialEmail || "");
  const [sentTo, setSentTo] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.post("/auth/password/forgot", { email: email.trim() });
      setSentTo(email.trim());
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<div>
    ${sentTo
      ? html`<${Alert} kind="success">${t("reset.link_sent", { email: sentTo })}<//>`
      : html`<form onSubmit=${submit}>
          <${Alert}>${error && errorMessage(error)}<//>
          <div class="field">
            <label for="forgot-email">${t("login.email")}</label>
            <input id="forgot-email" class="input" type="email" autocomplete="username" required
              value=${email} onInput=${(e) => setEmail(e.target.value)} />
          </div>
          <button class="btn btn-primary btn-block" type="submit" disabled=${busy || !email.trim()}>${busy ? t("common.wait") : t("reset.send_link")}</button>
        </form>`}
    <p class="small"><button type="button" class="btn btn-ghost btn-sm" onClick=${onBack}>← ${t("reset.back_to_login")}</button></p>
  </div>`;
}

function PasswordStep({ onDone, onForgot, onSignedIn }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  // Slowed down here (perhaps by someone else at this address), docs/security.md: the
  // answer says a code was sent if the password was right (POST /auth/login/confirm with
  // it), or the password and an authenticator code go together (POST /auth/login/code).
  // Either way the owner is signed in at once.
  const [withCode, setWithCode] = useState(false);
  const [sentHint, setSentHint] = useState(null); // {email_hint, expires_in}
  const [codeKind, setCodeKind] = useState("received"); // received | totp
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (withCode && codeKind === "received" && sentHint) {
        onSignedIn(await api.post("/auth/login/confirm", { code: code.trim() }));
      } else if (withCode && codeKind === "totp") {
        const body = { email: email.trim(), password, method: "totp", code: code.trim() };
        onSignedIn(await api.post("/auth/login/code", body));
      } else {
        onDone(await api.post("/auth/login", { email: email.trim(), password }));
      }
    } catch (err) {
      setError(err);
      if (err && err.code === "login_throttled") {
        setWithCode(true);
        if (err.body && err.body.code_sent_if_correct) setSentHint(err.body);
      }
      if (err && err.code === "password_required") {
        setSentHint(null);
        setCode("");
      }
    } finally {
      setBusy(false);
    }
  };
  const choose = (kind) => {
    setCodeKind(kind);
    setCode("");
  };
  return html`<form onSubmit=${submit} noValidate=${false}>
    <${Alert}>${error && errorMessage(error)}<//>
    <div class="field">
      <label for="login-email">${t("login.email")}</label>
      <input id="login-email" class="input" type="email" name="email" autocomplete="username" required
        value=${email} onInput=${(e) => setEmail(e.target.value)} aria-invalid=${error ? "true" : undefined} />
    </div>
    <div class="field">
      <label for="login-password">${t("login.password")}</label>
      <input id="login-password" class="input" type="password" name="password" autocomplete="current-password" required
        value=${password} onInput=${(e) => setPassword(e.target.value)} aria-invalid=${error ? "true" : undefined} />
    </div>
    ${withCode && html`<div class="field">
      ${sentHint && html`<${Alert} kind="info">${t("login.throttled_code_sent", { email: sentHint.email_hint, minutes: Math.round((sentHint.expires_in || 300) / 60) })}<//>`}
      <div class="choice-list" role="radiogroup">
        ${["received", "totp"].map(
          (k) => html`<label class=${`choice ${codeKind === k ? "selected" : ""}`} key=${k}>
            <input type="radio" name="throttled-code-kind" value=${k} checked=${codeKind === k} onChange=${() => choose(k)} />
            <span class="choice-title">${t(k === "received" ? "login.throttled_received" : "login.throttled_app")}</span>
          </label>`,
        )}
      </div>
      <label for="login-app-code">${t(codeKind === "received" ? "login.received_code" : "reauth.code_totp")}</label>
      <input id="login-app-code" class="input" inputmode="numeric" autocomplete="one-time-code" required
        value=${code} onInput=${(e) => setCode(e.target.value)} />
      ${codeKind === "totp" && html`<p class="small">${t("login.throttled_with_code")}</p>`}
    </div>`}
    <button class="btn btn-primary btn-block" type="submit" disabled=${busy}>${busy ? t("common.wait") : t("login.continue")}</button>
    <p class="forgot"><button type="button" class="btn-link" onClick=${() => onForgot(email)}>${t("reset.forgot")}</button></p>
  </form>`;
}

/** The Pro Santé Connect button, drawn in the spirit of the national charter (a white
 * badge and two lines of text on the PSC blue); no copied asset. */
function PscButton({ provider, next }) {
  const href = `${provider.start_url}?next=${encodeURIComponent(next)}`;
  return html`<div class="psc">
    <div class="or" aria-hidden="true"><span>${t("login.or")}</span></div>
    <a class="psc-btn" href=${href}>
      <span class="psc-badge" aria-hidden="true">
        <svg viewBox="0 0 32 32" width="26" height="26" focusable="false">
          <rect x="3" y="7" width="26" height="18" rx="3" fill="none" stroke="currentColor" stroke-width="2.4" />
          <rect x="7" y="12" width="7" height="6" rx="1.2" fill="currentColor" />
          <path d="M18 13h7M18 17h5" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" />
        </svg>
      </span>
      <span class="psc-text"><span>${t("psc.button_small")}</span>${" "}<strong>Pro Santé Connect</strong></span>
    </a>
    <p class="psc-help"><a href="https://esante.gouv.fr/produits-services/pro-sante-connect" target="_blank" rel="noopener noreferrer">${t("psc.what")}</a></p>
  </div>`;
}

function PscNotice({ query }) {
  const [pending, setPending] = useState(null);
  const [declined, setDeclined] = useState(false);
  const wantsLink = query.get("psc") === "link";
  useEffect(() => {
    if (wantsLink) api.get("/auth/oidc/pending").then(setPending, () => setDeclined(true));
  }, [wantsLink]);
  const decline = async () => {
    await api.del("/auth/oidc/pending").catch(() => null);
    setPending(null);
    setDeclined(true);
  };
  const errorCode = query.get("psc_error");
  if (errorCode) {
    const key = `psc.error_${errorCode}`;
    const text = t(key) === key ? t("psc.error_generic") : t(key);
    return html`<${Alert} title=${t("psc.error_title")}>${text}<//>`;
  }
  if (declined) return html`<${Alert} title=${t("psc.error_title")}>${t("psc.error_no_account")}<//>`;
  if (!pending) return null;
  return html`<div class="alert alert-info psc-link" role="status">
    <strong>${t("psc.link_title")}</strong>
    <p>${t("psc.link_lead", { name: pending.name, rpps: pending.rpps })}</p>
    <button type="button" class="btn btn-ghost btn-sm" onClick=${decline}>${t("psc.link_decline")}</button>
  </div>`;
}

const METHOD_ICON = { email: "mail", sms: "sms", totp: "key", recovery: "lock" };

function SecondFactorStep({ challenge, onRestart, onSignedIn }) {
  const [method, setMethod] = useState(challenge.methods.includes(challenge.preferred) ? challenge.preferred : challenge.methods[0]);
  const [sent, setSent] = useState(null); // {sent_to, expires_in}
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const codeRef = useRef(null);
  const needsSend = method === "email" || method === "sms";
  const hint = { email: challenge.email_hint, sms: challenge.mobile_hint };

  useEffect(() => {
    if (codeRef.current && (!needsSend || sent)) codeRef.current.focus();
  }, [method, sent]);

  const choose = (m) => {
    setMethod(m);
    setSent(null);
    setCode("");
    setError(null);
  };
  const handle = (err) => {
    if (err.code === "password_required") onRestart(err);
    else setError(err);
  };
  const send = async () => {
    setBusy(true);
    setError(null);
    try {
      setSent(await api.post("/auth/otp", { channel: method }));
    } catch (err) {
      handle(err);
    } finally {
      setBusy(false);
    }
  };
  const verify = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const apiMethod = needsSend ? "otp" : method;
      onSignedIn(await api.post("/auth/verify", { method: apiMethod, code: code.trim() }));
    } catch (err) {
      setCode("");
      handle(err);
    } finally {
      setBusy(false);
    }
  };
  const locked = error && (error.code === "account_locked" || error.code === "login_throttled");
  return html`<div>
    ${error && html`<${Alert} title=${locked ? t(error.code === "login_throttled" ? "login.throttled_title" : "login.locked_title") : t("login.error_title")}>${errorMessage(error)}<//>`}
    <fieldset>
      <legend>${t("login.choose_method")}</legend>
      <div class="choice-list" role="radiogroup">
        ${challenge.methods.map(
          (m) => html`<label class=${`choice ${method === m ? "selected" : ""}`} key=${m}>
            <input type="radio" name="mfa-method" value=${m} checked=${method === m} onChange=${() => choose(m)} />
            <${Icon} name=${METHOD_ICON[m]} />
            <span><span class="choice-title">${t(`login.method_${m}`)}</span>
            ${hint[m] && html`<br /><span class="choice-sub">${hint[m]}</span>`}</span>
          </label>`,
        )}
      </div>
    </fieldset>
    ${needsSend && !sent && html`<button type="button" class="btn btn-primary btn-block" onClick=${send} disabled=${busy || locked}>
      ${busy ? t("common.wait") : t("login.receive_code")}</button>`}
    ${(!needsSend || sent) && html`<form onSubmit=${verify}>
      ${sent && html`<${Alert} kind="info">${t("login.code_sent", { to: sent.sent_to, minutes: Math.round(sent.expires_in / 60) })}<//>`}
      <div class="field">
        <label for="login-code">${t(method === "recovery" ? "login.recovery_code" : "login.code")}</label>
        <input id="login-code" ref=${codeRef} class="input input-code" name="code" required
          inputmode=${method === "recovery" ? "text" : "numeric"} autocomplete="one-time-code"
          maxlength=${method === "recovery" ? 20 : 6} value=${code} onInput=${(e) => setCode(e.target.value)}
          aria-invalid=${error && error.code === "invalid_code" ? "true" : undefined} aria-describedby="code-hint" />
        <span id="code-hint" class="hint">${t(method === "totp" ? "login.code_hint_totp" : method === "recovery" ? "login.code_hint_recovery" : "login.code_hint")}</span>
      </div>
      <button class="btn btn-primary btn-block" type="submit" disabled=${busy || locked || code.trim().length < 6}>${busy ? t("common.wait") : t("login.validate")}</button>
      ${sent && html`<p class="small muted"><button type="button" class="btn btn-ghost btn-sm" onClick=${send} disabled=${busy}>${t("login.resend")}</button></p>`}
    </form>`}
    <p class="small"><button type="button" class="btn btn-ghost btn-sm" onClick=${() => onRestart(null)}>← ${t("login.back")}</button></p>
  </div>`;
}

/** The sign-in pages' frame: the product's promise on the left, the card on the right. */
export function AuthFrame({ children, help = true }) {
  return html`<div class="auth-page">
    <aside class="auth-aside">
      <div>
        <span class="brand"><span class="brand-mark" aria-hidden="true"></span>Consilium</span>
        <h2>${t("login.tagline")}</h2>
        <ul>
          <li><${Icon} name="video" /><span>${t("login.feature_rooms")}</span></li>
          <li><${Icon} name="folder" /><span>${t("login.feature_dossiers")}</span></li>
          <li><${Icon} name="shield" /><span>${t("login.feature_security")}</span></li>
        </ul>
      </div>
      <p class="legal">${t("login.legal")}</p>
    </aside>
    <main class="auth-main" id="main">
      <div class="auth-card">
        <div class="lang-switch"><${LangSwitch} /></div>
        <div class="card"><div class="card-body">${children}</div></div>
        ${help && html`<p class="small muted">${t("login.help")}</p>`}
      </div>
    </main>
  </div>`;
}

export function LoginPage({ query }) {
  useTitle(t("login.title"));
  const [challenge, setChallenge] = useState(null);
  const [restartError, setRestartError] = useState(null);
  const [forgot, setForgot] = useState(query.get("forgot") === "1" ? { email: "" } : null);
  const onSignedIn = (s) => {
    setSession(s);
    navigate(safeNext(query), { replace: true });
  };
  const expired = query.get("expired") === "1";
  const [providers, setProviders] = useState([]);
  useEffect(() => {
    api.get("/auth/oidc/providers").then((r) => setProviders(r.providers), () => setProviders([]));
  }, []);
  const psc = providers.find((p) => p.name === "psc");
  return html`<${AuthFrame}>
    ${!forgot && html`<div class="steps-mini" aria-hidden="true">
      <span class=${challenge ? "" : "on"}><b>1</b>${t("login.step_password")}</span>
      <span class=${challenge ? "on" : ""}><b>2</b>${t("login.step_code")}</span>
    </div>`}
    <h1>${forgot ? t("reset.forgot_title") : challenge ? t("login.second_factor_title") : t("login.title")}</h1>
    <p class="lead">${forgot ? t("reset.forgot_lead") : challenge ? t("login.second_factor_lead") : t("login.lead")}</p>
    ${expired && !challenge && !restartError && html`<${Alert} kind="info">${t("login.session_expired")}<//>`}
    ${restartError && !challenge && html`<${Alert}>${errorMessage(restartError)}<//>`}
    ${!forgot && !challenge && html`<${PscNotice} query=${query} />`}
    ${forgot
      ? html`<${ForgotStep} initialEmail=${forgot.email} onBack=${() => setForgot(null)} />`
      : challenge
      ? html`<${SecondFactorStep} challenge=${challenge} onSignedIn=${onSignedIn}
          onRestart=${(err) => { setRestartError(err); setChallenge(null); }} />`
      : html`<${PasswordStep} onForgot=${(email) => setForgot({ email })} onSignedIn=${onSignedIn}
          onDone=${(c) => { setRestartError(null); setChallenge(c); }} />`}
    ${psc && !forgot && !challenge && query.get("psc") !== "link" && html`<${PscButton} provider=${psc} next=${safeNext(query)} />`}
  <//>`;
}
