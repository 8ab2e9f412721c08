-- Version 17: resource servers (issue 30, RFC 8707). The APIs and MCP servers tokens
-- are for: a token asked for one carries its identifier as `aud` and only its scopes.

CREATE TABLE resource_servers (
    id               UUID PRIMARY KEY,
    org_id           UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    identifier       TEXT NOT NULL,
    name             TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    access_token_ttl BIGINT,
    dpop_required    BOOLEAN NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (org_id, identifier)
);
CREATE INDEX resource_servers_org ON resource_servers (org_id, id);

-- Whoever could manage agents registers resource servers too: existing holders of
-- agents:write (each organization's bootstrap admin among them) get both scopes.
UPDATE agents SET scopes = (
    SELECT json_agg(v ORDER BY v)::text FROM (
        SELECT jsonb_array_elements_text(agents.scopes::jsonb) AS v
        UNION SELECT 'resource-servers:read' UNION SELECT 'resource-servers:write') s)
WHERE agents.scopes::jsonb ? 'agents:write';
UPDATE users SET scopes = (
    SELECT json_agg(v ORDER BY v)::text FROM (
        SELECT jsonb_array_elements_text(users.scopes::jsonb) AS v
        UNION SELECT 'resource-servers:read' UNION SELECT 'resource-servers:write') s)
WHERE users.scopes::jsonb ? 'agents:write';
