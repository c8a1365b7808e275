// A real OpenID provider for the identity tests: panva's certified oidc-provider on
// 127.0.0.1, with its development sign-in pages (any login, any password: the login
// becomes the subject). Usage: node provider.mjs PORT CLIENTS_JSON, where
// CLIENTS_JSON is [{"client_id", "client_secret", "redirect_uris": [...]}].
// Prints "listening <issuer>" once it accepts connections.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const clients = JSON.parse(process.argv[3]);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    ...c,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, email: `${sub}@idp.example`, email_verified: true }),
  }),
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  ttl: { IdToken: 3600, AccessToken: 3600, AuthorizationCode: 600 },
});
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
