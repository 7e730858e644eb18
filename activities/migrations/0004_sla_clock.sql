-- The SLA clock (issue 13): whether it is paused (the ticket waits on the customer), and
-- how long it has been paused, for the list and the indicators. A paused ticket has no
-- due_at: nothing about it is due until the customer answers.
ALTER TABLE tickets ADD COLUMN sla_paused_since timestamptz;
ALTER TABLE tickets ADD COLUMN sla_paused_seconds double precision NOT NULL DEFAULT 0;
