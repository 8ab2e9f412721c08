// node oidc-provider doing client_credentials with ES256 JWT access tokens: the peer the
// load harness measures AgentIdP against in the same sitting.
// usage: node server.mjs <port> <client_id> <client_secret>
import Provider from 'oidc-provider';
import * as crypto from 'node:crypto';

const [port, clientId, clientSecret] = process.argv.slice(2);
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'peer' };
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [jwk] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:agentidp:bench',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'bench',
        audience: 'urn:agentidp:bench',
        accessTokenTTL: 900,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => console.log(`oidc-provider on ${issuer}`));
