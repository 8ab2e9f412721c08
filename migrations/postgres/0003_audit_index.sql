-- Version 3: audit listings page by (chain, seq), which the UNIQUE (chain, seq) key
-- already indexes; the (chain, id) index only cost every audit insert a fourth B-tree.
DROP INDEX audit_events_chain_id;
