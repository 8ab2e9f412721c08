// node openid-client (v6) against AgentIdP: discovery, client_credentials,
// introspection and revocation, used exactly as its documentation shows.
// usage: node openid_client.mjs <issuer> <client_id> <client_secret>
import * as client from 'openid-client';

const [issuer, clientId, clientSecret] = process.argv.slice(2);
const config = await client.discovery(new URL(issuer), clientId, clientSecret, client.ClientSecretBasic(clientSecret), {
  algorithm: 'oauth2', // RFC 8414 metadata: AgentIdP is not an OpenID Provider
  execute: [client.allowInsecureRequests], // the test server speaks plain HTTP on loopback
});
const meta = config.serverMetadata();
const tokens = await client.clientCredentialsGrant(config, { scope: 'agents:read' });
const introspected = await client.tokenIntrospection(config, tokens.access_token);
await client.tokenRevocation(config, tokens.access_token);
const afterRevocation = await client.tokenIntrospection(config, tokens.access_token);
console.log(JSON.stringify({
  issuer: meta.issuer,
  token_type: tokens.token_type,
  scope: tokens.scope,
  active: introspected.active,
  introspected_client_id: introspected.client_id,
  active_after_revocation: afterRevocation.active,
}));
