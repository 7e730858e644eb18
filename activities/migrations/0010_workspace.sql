-- The agents' workspace (docs/workspace.md): what its queue shows beside the SLA, its
-- sessions and the agents' choices, and who has a ticket open. (A ticket's changes are
-- told to the API by the store after each commit, `NOTIFY ticketflow_tickets`: not by a
-- trigger, whose NOTIFY inside the append would serialise every append's commit.)

-- The first reply still owed, and the first warning of the SLA still to keep: a row is
-- "breaching soon" once warned, and its countdown names the deadline it counts to.
ALTER TABLE tickets ADD COLUMN first_response_due_at timestamptz;
ALTER TABLE tickets ADD COLUMN sla_warned_at timestamptz;

UPDATE tickets t SET first_response_due_at = (e.data ->> 'first_response_due_at')::timestamptz
FROM ticket_events e
WHERE e.ticket_id = t.ticket_id AND e.type = 'ticket_opened'
  AND t.first_response_at IS NULL AND t.status <> 'closed';

UPDATE tickets t SET sla_warned_at = w.at
FROM (
    SELECT ticket_id, max(occurred_at) AS at FROM ticket_events
    WHERE type = 'sla_warned' GROUP BY ticket_id
) w
WHERE w.ticket_id = t.ticket_id AND t.due_at IS NOT NULL;

-- A customer's other tickets, newest first.
CREATE INDEX tickets_customer ON tickets (customer_id, opened_at DESC);
-- The queue's counts walk the open tickets only.
CREATE INDEX tickets_open ON tickets (status, assignee) WHERE status <> 'closed';

-- A signed-in browser. The cookie holds a random token; this table only its SHA-256, and
-- the SHA-256 of the key signed in with, so a key taken out of configuration ends every
-- session it opened.
CREATE TABLE workspace_sessions (
    token_sha256 text        PRIMARY KEY,
    key_sha256   text        NOT NULL,
    -- The key's name when the session opened: its preferences are read with it.
    staff_id     text        NOT NULL,
    csrf         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX workspace_sessions_expires ON workspace_sessions (expires_at);

-- Each staff member's interface language and time zone, wherever they sign in.
CREATE TABLE workspace_preferences (
    staff_id   text        PRIMARY KEY,
    locale     text        NOT NULL,
    time_zone  text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Who has a ticket open (one row per open page), and until when they are typing. Lost
-- on a crash by design (UNLOGGED): presence is only ever a few seconds old.
CREATE UNLOGGED TABLE workspace_presence (
    ticket_id    text        NOT NULL,
    connection   text        NOT NULL,
    staff_id     text        NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    typing_until timestamptz,
    PRIMARY KEY (ticket_id, connection)
);
