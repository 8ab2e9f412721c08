-- Version 8: an organization's own delegation settings (non-delegable scopes, a lower
-- depth cap), as the JSON text of `DelegationSettings`. They reach the delegation
-- policy as facts; '{}' is "nothing beyond the shipped policy".

ALTER TABLE organizations ADD COLUMN delegation TEXT NOT NULL DEFAULT '{}';
