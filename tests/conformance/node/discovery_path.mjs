// node openid-client (v6) discovering an issuer with a path the RFC 8414 way
// (algorithm 'oauth2': /.well-known/oauth-authorization-server/<path>), then a
// client_credentials grant and introspection through the discovered endpoints. The
// issuer's https origin is served by the test server at <base>, as a proxy that strips
// the issuer's path would: customFetch maps one to the other.
// usage: node discovery_path.mjs <base> <issuer> <client_id> <client_secret>
import * as client from 'openid-client';

const [base, issuer, clientId, clientSecret] = process.argv.slice(2);
const origin = new URL(issuer).origin;
const fetched = [];
const customFetch = (url, options) => {
  const target = url.startsWith(issuer) ? base + url.slice(issuer.length) : base + url.slice(origin.length);
  fetched.push(new URL(url).pathname);
  return fetch(target, options);
};
const config = await client.discovery(new URL(issuer), clientId, undefined, client.ClientSecretBasic(clientSecret), {
  algorithm: 'oauth2',
  [client.customFetch]: customFetch,
});
config[client.customFetch] = customFetch;
const tokens = await client.clientCredentialsGrant(config, { scope: 'agents:read' });
const introspected = await client.tokenIntrospection(config, tokens.access_token);
console.log(JSON.stringify({
  issuer: config.serverMetadata().issuer,
  discovery_path: fetched[0],
  token_type: tokens.token_type,
  active: introspected.active,
}));
