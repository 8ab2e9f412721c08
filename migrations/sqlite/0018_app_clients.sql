-- Version 18: applications (issue 30): OAuth clients of the authorization code grant,
-- public (no secret, PKCE only) or confidential (an HMAC of the secret, as credentials).

CREATE TABLE app_clients (
    id                         TEXT PRIMARY KEY,
    org_id                     TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    client_id                  TEXT NOT NULL UNIQUE,
    name                       TEXT NOT NULL,
    redirect_uris              TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    grant_types                TEXT NOT NULL,
    scopes                     TEXT NOT NULL,
    resources                  TEXT NOT NULL,
    agent_id                   TEXT,
    jwks                       TEXT,
    first_party                INTEGER NOT NULL,
    status                     TEXT NOT NULL,
    secret_prefix              TEXT,
    secret_hash                BLOB,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
);
CREATE INDEX app_clients_org ON app_clients (org_id, id);

-- Whoever could manage agents registers applications too.
UPDATE agents SET scopes = (
    SELECT json_group_array(value) FROM (
        SELECT value FROM json_each(agents.scopes)
        UNION SELECT 'clients:read' UNION SELECT 'clients:write'
        ORDER BY value))
WHERE EXISTS (SELECT 1 FROM json_each(agents.scopes) WHERE value = 'agents:write');
UPDATE users SET scopes = (
    SELECT json_group_array(value) FROM (
        SELECT value FROM json_each(users.scopes)
        UNION SELECT 'clients:read' UNION SELECT 'clients:write'
        ORDER BY value))
WHERE EXISTS (SELECT 1 FROM json_each(users.scopes) WHERE value = 'agents:write');
