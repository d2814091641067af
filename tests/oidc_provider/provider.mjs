// A real OpenID Connect provider (panva/oidc-provider) for end-to-end SSO
// tests. Started by tests/oidc_provider.py; not for production use.
//
// Environment:
//   OIDC_CLIENT_ID, OIDC_CLIENT_SECRET   the single registered client
//   OIDC_REDIRECT_URI                    its redirect URI(s), whitespace-separated
//   OIDC_TOKEN_AUTH_METHOD               client_secret_post (default) or client_secret_basic
//   PORT                                 port on 127.0.0.1; 0 / unset = pick a free one
//
// Prints exactly one line "READY <issuer>" on stdout once it accepts requests.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.mjs: environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

const clientId = required('OIDC_CLIENT_ID');
const clientSecret = required('OIDC_CLIENT_SECRET');
const redirectUris = required('OIDC_REDIRECT_URI').split(/\s+/).filter(Boolean);
const authMethod = process.env.OIDC_TOKEN_AUTH_METHOD || 'client_secret_post';
if (!['client_secret_post', 'client_secret_basic'].includes(authMethod)) {
  console.error(`provider.mjs: unsupported OIDC_TOKEN_AUTH_METHOD ${authMethod}`);
  process.exit(2);
}

// Listen before building the provider: with PORT=0 the OS picks a free port,
// so there is no pick-then-bind race, and the issuer can include the real port.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(process.env.PORT || 0), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

// Fresh signing key per run instead of the library's well-known dev keys, so
// ID token signature checks in tests are meaningful.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: randomBytes(8).toString('hex') };

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: authMethod,
  }],
  // oidc-provider binds a client to exactly one auth method. Advertising only
  // that one makes allauth (which prefers client_secret_post when listed)
  // pick the right one from discovery without extra settings.
  clientAuthMethods: [authMethod],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // Put the scope claims into the ID token as well (the default keeps them
  // userinfo-only when an access token is issued), so tests work with or
  // without allauth's fetch_userinfo.
  conformIdTokenClaims: false,
  // Any login id is accepted; the password field of the dev login form is ignored.
  async findAccount(ctx, id) {
    const email = id.includes('@') ? id : `${id}@sso.example`;
    const username = email.split('@')[0];
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email, email_verified: true, name: username, preferred_username: username,
        };
      },
    };
  },
  // Built-in dev interactions: login form (login + password) then a consent
  // "Continue" button. Fine for tests, and driveable by both requests and a browser.
  features: { devInteractions: { enabled: true } },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
});

// The library logs a loud warning for dev interactions etc.; keep it on stderr
// only and make errors visible to whoever reads the test logs.
provider.on('server_error', (ctx, err) => console.error('server_error', err));

server.on('request', provider.callback());

// All state is in memory; nothing to flush, so exit at once on termination.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}

console.log(`READY ${issuer}`);
