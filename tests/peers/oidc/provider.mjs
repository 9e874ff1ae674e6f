// A real OpenID provider standing in for Pro Santé Connect in Consilium's tests.
//
// node-oidc-provider (OpenID Certified) configured like PSC: scopes `openid scope_all`, the
// claims PSC gives (SubjectNameID = "8" + RPPS, family_name, given_name, SubjectRefPro…),
// acr `eidas1`, PKCE required, confidential client (client_secret_basic), RP-initiated
// logout. Its sign-in page stands in for the e-CPS screens: an identifier and a secret.
//
// Usage: node provider.mjs <config.json>, where the JSON (written by the test fixture) holds
//   { issuer, port, jwk (private signing key), client: {client_id, client_secret,
//     redirect_uris, post_logout_redirect_uris}, accounts: {login: {password, sub, claims}} }
// Prints "listening <port>" once it accepts connections.
import { readFileSync } from "node:fs";

import Provider from "oidc-provider";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const accounts = cfg.accounts;
const bySub = Object.fromEntries(Object.values(accounts).map((a) => [a.sub, a]));

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html lang="fr"><head><meta charset="utf-8">
<title>${esc(title)}</title></head><body><main><h1>${esc(title)}</h1>${body}</main></body></html>`;

const PSC_CLAIMS = [
  "SubjectNameID",
  "SubjectRefPro",
  "SubjectOrganization",
  "SubjectRole",
  "family_name",
  "given_name",
  "preferred_username",
  "otherIds",
];

const configuration = {
  clients: [
    {
      ...cfg.client,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "RS256",
    },
  ],
  jwks: { keys: [cfg.jwk] },
  cookies: { keys: ["consilium-test-provider-cookie-key"] },
  scopes: ["openid", "scope_all"],
  claims: { openid: ["sub"], scope_all: PSC_CLAIMS },
  acrValues: ["eidas1"],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    userinfo: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, sub) => {
    const account = bySub[sub];
    if (!account) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...account.claims }) };
  },
  ttl: { IdToken: 3600, AccessToken: 600, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
};

const provider = new Provider(cfg.issuer, configuration);

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

async function grantAll(grantId, params, accountId) {
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(String(params.scope || "openid"));
  grant.addOIDCClaims(PSC_CLAIMS);
  return grant.save();
}

// The sign-in and consent pages (the provider's own; Consilium only ever redirects here).
provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([\w-]+)(\/(login|confirm|abort))?$/);
  if (!m) return next();
  ctx.set("Cache-Control", "no-store");
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { uid, prompt, params } = details;
  const action = m[3];
  if (ctx.method === "GET" && !action) {
    ctx.type = "html";
    if (prompt.name === "login") {
      ctx.body = page(
        "Pro Santé Connect — identification (test)",
        `<form method="post" action="/interaction/${esc(uid)}/login">
          <label for="login">Identifiant national (RPPS)</label>
          <input id="login" name="login" autocomplete="off" required>
          <label for="password">Code secret e-CPS</label>
          <input id="password" name="password" type="password" required>
          <button type="submit">Se connecter avec e-CPS</button>
        </form>
        <form method="post" action="/interaction/${esc(uid)}/abort"><button type="submit">Annuler</button></form>`,
      );
    } else {
      ctx.body = page(
        "Pro Santé Connect — autorisation (test)",
        `<p>Le service ${esc(params.client_id)} demande l'accès à votre profil CPS.</p>
        <form method="post" action="/interaction/${esc(uid)}/confirm"><button type="submit">Autoriser</button></form>
        <form method="post" action="/interaction/${esc(uid)}/abort"><button type="submit">Refuser</button></form>`,
      );
    }
    return undefined;
  }
  if (ctx.method !== "POST") return next();
  if (action === "abort") {
    return provider.interactionFinished(ctx.req, ctx.res, {
      error: "access_denied",
      error_description: "End-User aborted interaction",
    }, { mergeWithLastSubmission: false });
  }
  if (action === "login") {
    const form = await readForm(ctx.req);
    const account = accounts[form.get("login") || ""];
    if (!account || account.password !== form.get("password")) {
      ctx.status = 401;
      ctx.type = "html";
      ctx.body = page("Identification refusée", `<p>Identifiant ou code incorrect.</p>
        <a href="/interaction/${esc(uid)}">Réessayer</a>`);
      return undefined;
    }
    // A CPS card or the e-CPS app: PSC's substantial level (eIDAS).
    return provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId: account.sub, acr: "eidas1", amr: ["pop", "mfa"] },
    }, { mergeWithLastSubmission: false });
  }
  if (action === "confirm") {
    const grantId = await grantAll(details.grantId, params, details.session.accountId);
    return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
  }
  return next();
});

const server = provider.listen(cfg.port, "127.0.0.1", () => {
  console.log(`listening ${cfg.port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
