// A real OpenID Connect provider for the gateway's sign-in tests: panva/node-oidc-provider
// (OpenID Certified), pinned by package-lock.json, on loopback at an ephemeral port.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"clients": [...client metadata...], "accounts": {"<login>": {"roles": [...],
// "customer_id": "..."}}, "resources": {"<resource indicator>": {"audience": "..."}},
// "access_token_ttl": 600}. Prints one JSON line {"issuer": "http://127.0.0.1:PORT"} once it
// listens, then serves until killed.
//
// Sign-in is the provider's own development login form (devInteractions: a login name and a
// password field). Only the accounts in CONFIG exist; any other login fails at the provider.
// Consent is given by the provider's operator for these first-party clients (loadExistingGrant),
// so the person sees the login form and nothing else. Access tokens are JWTs for the requested
// resource (RFC 8707, resource indicators) carrying the account's roles and customer_id.

import { createServer } from "node:http";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import Provider, { errors } from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const accounts = config.accounts ?? {};
const resources = config.resources ?? {};
const ttl = config.access_token_ttl ?? 600;

const server = createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
const kid = `rs-${randomBytes(4).toString("hex")}`;

function tokenClaims(accountId) {
  const account = accounts[accountId];
  if (!account) return {};
  const claims = { roles: account.roles ?? [] };
  if (account.customer_id) claims.customer_id = account.customer_id;
  return claims;
}

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [{ ...rsa, kid, use: "sig", alg: "RS256" }] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  pkce: { required: () => true },
  ttl: { AccessToken: ttl, AuthorizationCode: 60, IdToken: ttl, Interaction: 600, Session: 3600, Grant: 3600 },
  async findAccount(_ctx, id) {
    if (!accounts[id]) return undefined;
    return { accountId: id, claims: async () => ({ sub: id }) };
  },
  async extraTokenClaims(_ctx, token) {
    return token.kind === "AccessToken" ? tokenClaims(token.accountId) : undefined;
  },
  async loadExistingGrant(ctx) {
    // First-party clients: the operator consented for the person. Every request gets a grant
    // for what it asks (openid scopes and the resource's scope), nothing more.
    const { Grant } = ctx.oidc.provider;
    const grant = new Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid");
    const asked = ctx.oidc.params.resource;
    for (const resource of [asked].flat().filter(Boolean)) {
      if (resources[resource]) grant.addResourceScope(resource, "footage");
    }
    await grant.save();
    return grant;
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: () => true,
      async getResourceServerInfo(_ctx, indicator) {
        const resource = resources[indicator];
        if (!resource) throw new errors.InvalidTarget();
        return {
          scope: "footage",
          audience: resource.audience ?? indicator,
          accessTokenTTL: ttl,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "RS256" } },
        };
      },
    },
  },
});

for (const event of ["server_error", "grant.error", "authorization.error"]) {
  provider.on(event, (_ctx, err) => console.error(event, err));
}
server.on("request", provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
