-- Silences set from the Telegram bot: /mute (until a time) and /ack (until the component
-- recovers). In Postgres, so every monitor replica, and a replica after a restart, holds the same
-- alerts. Maintenance windows are not here: they come from the config.

CREATE TABLE monitor_silences (
  component  text NOT NULL,                  -- a component id, or a pattern with * (mutes)
  kind       text NOT NULL CHECK (kind IN ('mute', 'ack')),
  until      timestamptz,                    -- a mute's end; NULL for an ack
  by_chat    bigint,                         -- the admin's Telegram chat id
  by_name    text NOT NULL,                  -- shown on the dashboard
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (component, kind),
  CHECK ((kind = 'mute') = (until IS NOT NULL))
);
