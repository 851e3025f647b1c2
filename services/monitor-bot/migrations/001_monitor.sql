-- monitor-bot history: every sample and every status change, pruned by retention.
-- Separate from the messaging schema (own version table monitor_schema_migrations).

CREATE TABLE monitor_samples (
  id          bigserial PRIMARY KEY,
  at          timestamptz NOT NULL,
  source      text NOT NULL,             -- the monitor instance that took it
  component   text NOT NULL,             -- host:web1, service:web1/nginx, http:router@10.0.0.5:9200, messaging:msg1
  metric      text NOT NULL,             -- cpu | mem | hdd | status | delay
  value       double precision,          -- percent, 1/0, seconds; NULL when the probe failed
  ok          boolean NOT NULL,
  latency_ms  real,                      -- how long the probe took
  detail      text NOT NULL DEFAULT ''
);
CREATE INDEX monitor_samples_at ON monitor_samples (at);
CREATE INDEX monitor_samples_component_at ON monitor_samples (component, metric, at DESC);

CREATE TABLE monitor_events (
  id          bigserial PRIMARY KEY,
  component   text NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('down', 'up', 'threshold', 'clear')),
  at          timestamptz NOT NULL,
  since       timestamptz NOT NULL,      -- down: outage start; up: when it went down; threshold/clear: when it went high
  source      text NOT NULL,
  status      text NOT NULL DEFAULT '',
  value       double precision,
  detail      text NOT NULL DEFAULT ''
);
CREATE INDEX monitor_events_at ON monitor_events (at);
CREATE INDEX monitor_events_component ON monitor_events (component, id DESC);
