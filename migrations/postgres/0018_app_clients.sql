-- Version 18: applications (issue 30): OAuth clients of the authorization code grant,
-- public (no secret, PKCE only) or confidential (an HMAC of the secret, as credentials).

CREATE TABLE app_clients (
    id                         UUID PRIMARY KEY,
    org_id                     UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    client_id                  TEXT NOT NULL UNIQUE,
    name                       TEXT NOT NULL,
    redirect_uris              TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    grant_types                TEXT NOT NULL,
    scopes                     TEXT NOT NULL,
    resources                  TEXT NOT NULL,
    agent_id                   UUID,
    jwks                       TEXT,
    first_party                BOOLEAN NOT NULL,
    status                     TEXT NOT NULL,
    secret_prefix              TEXT,
    secret_hash                BYTEA,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);
CREATE INDEX app_clients_org ON app_clients (org_id, id);

-- Whoever could manage agents registers applications too.
UPDATE agents SET scopes = (
    SELECT json_agg(v ORDER BY v)::text FROM (
        SELECT jsonb_array_elements_text(agents.scopes::jsonb) AS v
        UNION SELECT 'clients:read' UNION SELECT 'clients:write') s)
WHERE agents.scopes::jsonb ? 'agents:write';
UPDATE users SET scopes = (
    SELECT json_agg(v ORDER BY v)::text FROM (
        SELECT jsonb_array_elements_text(users.scopes::jsonb) AS v
        UNION SELECT 'clients:read' UNION SELECT 'clients:write') s)
WHERE users.scopes::jsonb ? 'agents:write';
