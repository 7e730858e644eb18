-- Delivery (issue 9): the relay (activities.delivery) leases due rows, delivers them, and
-- records what was sent and what the destination answered; a row it gives up on is
-- reported to its ticket and marked failed. Nothing stays silently undelivered.

ALTER TABLE outbox ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE outbox ADD COLUMN last_error text;
ALTER TABLE outbox ADD COLUMN failed_at timestamptz;
-- The words as delivered (customer messages in the customer's language) and the locale.
ALTER TABLE outbox ADD COLUMN rendered text;
ALTER TABLE outbox ADD COLUMN locale text;
-- What the destination answered (HTTP status, SMTP acceptance), when it was delivered.
ALTER TABLE outbox ADD COLUMN receipt jsonb;

-- Rows written before deliveries existed were never sent. Hand-offs are still work to do
-- and recent messages still timely: they are delivered. A customer message queued more
-- than an hour before would reach the customer late and out of context: it is marked
-- failed with the reason, for an operator to see on the ticket's deliveries.
UPDATE outbox SET failed_at = now(),
    last_error = 'queued over an hour before deliveries existed (migration 0003): not sent'
WHERE dispatched_at IS NULL
  AND kind LIKE 'customer_message:%'
  AND created_at < now() - interval '1 hour';

DROP INDEX outbox_undispatched;
-- The relay's lease: due rows in order.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
    WHERE dispatched_at IS NULL AND failed_at IS NULL;
-- "Is an earlier row of this ticket still on its way to this destination?"
CREATE INDEX outbox_ticket_destination ON outbox (ticket_id, channel_or_recipient, id)
    WHERE dispatched_at IS NULL AND failed_at IS NULL;
