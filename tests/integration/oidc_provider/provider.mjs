// A real OpenID provider for gate's sign-in tests (tests/integration/oidc_web.rs): the npm package
// `oidc-provider` (pinned in package-lock.json; `.ci/deps/oidc-provider.sh` installs it) with one
// client and a few accounts, its development login and consent pages, on 127.0.0.1.
//
//   node provider.mjs PORT REDIRECT_URI CLIENT_SECRET [HOST]
//
// Listens on 127.0.0.1; HOST (default 127.0.0.1) names it in the issuer, so that a test can put
// the provider on another site than gate (`localhost` vs `127.0.0.1`), as in a real deployment.
// Prints `ready http://HOST:PORT` on stdout once it listens. Any password signs in; the
// login name picks the account.
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const [port, redirectUri, clientSecret, host = '127.0.0.1'] = process.argv.slice(2);
if (!port || !redirectUri || !clientSecret) {
  console.error('usage: node provider.mjs PORT REDIRECT_URI CLIENT_SECRET');
  process.exit(2);
}
const issuer = `http://${host}:${port}`;

const accounts = {
  alice: { email: 'alice@example.com', email_verified: true },
  // An address the provider has not verified: gate must not match it.
  mallory: { email: 'mallory@example.com', email_verified: false },
  // Verified, but no principal of gate's policy has it.
  zed: { email: 'zed@example.com', email_verified: true },
};

const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'gate-web',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [{ ...key, kid: 'provider-rsa-1', use: 'sig', alg: 'RS256' }] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // The ID token carries the scopes' claims (gate reads `email` from it, not from userinfo).
  conformIdTokenClaims: false,
  pkce: { methods: ['S256'], required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
