-- Version 17: resource servers (issue 30, RFC 8707). The APIs and MCP servers tokens
-- are for: a token asked for one carries its identifier as `aud` and only its scopes.

CREATE TABLE resource_servers (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    identifier       TEXT NOT NULL,
    name             TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    access_token_ttl INTEGER,
    dpop_required    INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (org_id, identifier)
);
CREATE INDEX resource_servers_org ON resource_servers (org_id, id);

-- Whoever could manage agents registers resource servers too: existing holders of
-- agents:write (each organization's bootstrap admin among them) get both scopes.
UPDATE agents SET scopes = (
    SELECT json_group_array(value) FROM (
        SELECT value FROM json_each(agents.scopes)
        UNION SELECT 'resource-servers:read' UNION SELECT 'resource-servers:write'
        ORDER BY value))
WHERE EXISTS (SELECT 1 FROM json_each(agents.scopes) WHERE value = 'agents:write');
UPDATE users SET scopes = (
    SELECT json_group_array(value) FROM (
        SELECT value FROM json_each(users.scopes)
        UNION SELECT 'resource-servers:read' UNION SELECT 'resource-servers:write'
        ORDER BY value))
WHERE EXISTS (SELECT 1 FROM json_each(users.scopes) WHERE value = 'agents:write');
