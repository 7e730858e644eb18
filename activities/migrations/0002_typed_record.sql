-- The typed record (issue 8): every outbox row names the event that sent it, and the
-- tickets read model keeps the subject and the SLA instant still to keep, for the list
-- ordered by what needs attention first.

ALTER TABLE outbox ADD COLUMN event_seq integer;
-- The thread reads a ticket's customer messages in event order.
CREATE INDEX outbox_ticket_event ON outbox (ticket_id, event_seq);

ALTER TABLE tickets ADD COLUMN subject text;
ALTER TABLE tickets ADD COLUMN due_at timestamptz;

-- Rows written before this migration: open tickets whose SLA no milestone met yet.
UPDATE tickets t SET due_at = t.sla_due_at
WHERE t.status <> 'closed'
  AND NOT EXISTS (
      SELECT FROM ticket_events e
      WHERE e.ticket_id = t.ticket_id
        AND e.type = 'milestone_recorded'
        AND (e.data ->> 'meets_sla')::boolean
  );

-- "What needs attention first": the SLA due soonest (none last), then the priority.
-- The list's keyset cursor walks exactly this order.
CREATE INDEX tickets_attention ON tickets (
    (COALESCE(due_at, 'infinity'::timestamptz)),
    (CASE priority WHEN 'E' THEN 0 WHEN 'A' THEN 1 WHEN 'B' THEN 2 WHEN 'C' THEN 3 ELSE 4 END),
    opened_at,
    ticket_id
);
CREATE INDEX tickets_assignee ON tickets (assignee, opened_at);
