-- Version 6: usage analytics. One row per (organization, agent, UTC day, metric): how
-- many times it happened. The AnalyticsAggregator adds to these rows in batches
-- (INSERT … ON CONFLICT DO UPDATE), so every node adds to the same rows. Rows outlive
-- the agent they count (a deleted agent's history stays readable).

CREATE TABLE analytics_events (
    org_id    UUID NOT NULL,
    agent_id  UUID NOT NULL,
    day       BIGINT NOT NULL,
    metric    TEXT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (org_id, agent_id, day, metric)
);

-- Organization-wide reads (summary, timeseries) scan by day.
CREATE INDEX analytics_events_org_day ON analytics_events (org_id, day);
