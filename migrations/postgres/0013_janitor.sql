-- Version 13: the janitor removes webhook deliveries past their retention, oldest
-- first, in small batches: an index by age keeps each batch from scanning the table.
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
