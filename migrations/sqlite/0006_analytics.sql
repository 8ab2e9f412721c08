-- Version 6: usage analytics. One row per (organization, agent, UTC day, metric): how
-- many times it happened. The AnalyticsAggregator adds to these rows in batches
-- (INSERT … ON CONFLICT DO UPDATE). Rows outlive the agent they count (a deleted
-- agent's history stays readable).

CREATE TABLE analytics_events (
    org_id    TEXT NOT NULL,
    agent_id  TEXT NOT NULL,
    day       INTEGER NOT NULL,
    metric    TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (org_id, agent_id, day, metric)
) WITHOUT ROWID;

-- Organization-wide reads (summary, timeseries) scan by day.
CREATE INDEX analytics_events_org_day ON analytics_events (org_id, day);
