-- The Telegram bot's members: one row per chat that sent /start. Shared by every replica, so a
-- conversation may continue on whichever replica Telegram's next update reaches.

CREATE TABLE monitor_members (
  chat_id          bigint PRIMARY KEY,        -- Telegram's chat id: a person, or a group
  stage            text NOT NULL CHECK (stage IN ('name', 'email', 'member')),  -- what /start still waits for
  name             text,
  email            text,
  is_admin         boolean NOT NULL DEFAULT false,
  admin_failures   integer NOT NULL DEFAULT 0, -- wrong /admin codes in a row
  admin_locked_until timestamptz,             -- /admin refused until then, after too many wrong codes
  username         text,                      -- the Telegram @username when /start came, for the sysadmins
  created_at       timestamptz NOT NULL DEFAULT now(),
  registered_at    timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Alerts go to every registered member.
CREATE INDEX monitor_members_stage ON monitor_members (stage);
