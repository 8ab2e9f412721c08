-- Version 16: people (issue 30). A user is a member of one organization, found by its
-- normalized email; the password is an argon2id PHC string (its parameters inside).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    password_hash TEXT,
    last_login_at INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (org_id, email)
);
CREATE INDEX users_org ON users (org_id, id);

-- Whoever could manage agents manages people too: existing holders of agents:write
-- (each organization's bootstrap admin among them) get users:read and users:write.
UPDATE agents SET scopes = (
    SELECT json_group_array(value) FROM (
        SELECT value FROM json_each(agents.scopes)
        UNION SELECT 'users:read' UNION SELECT 'users:write'
        ORDER BY value))
WHERE EXISTS (SELECT 1 FROM json_each(agents.scopes) WHERE value = 'agents:write');
