-- Erasure (issue 14, PIPL / GDPR right to erasure): a customer's personal data is
-- removed from the event store, the outbox, the read model and the intake keys, while
-- every count and duration the indicators read stays as it was.
--
-- ticket_events stays append-only for everyone else. One exception: inside a transaction
-- that set `ticketflow.erasure = on` (SET LOCAL, activities/erasure.py), an UPDATE may
-- rewrite `data`, and the actor id of what the customer did (their pseudonym); nothing
-- else. Deleting stays refused.
CREATE OR REPLACE FUNCTION ticket_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND current_setting('ticketflow.erasure', true) = 'on'
       AND NEW.global_position = OLD.global_position
       AND NEW.ticket_id = OLD.ticket_id
       AND NEW.seq = OLD.seq
       AND NEW.type = OLD.type
       AND NEW.occurred_at = OLD.occurred_at
       AND (NEW.actor_id = OLD.actor_id OR OLD.actor_role = 'customer')
       AND NEW.actor_role = OLD.actor_role
       AND NEW.recorded_at = OLD.recorded_at
       AND NEW.transaction_id = OLD.transaction_id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ticket_events is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

-- "Which tickets are this customer's": the intake names the customer, once per ticket.
CREATE INDEX ticket_events_customer ON ticket_events ((data ->> 'customer_id'))
    WHERE type = 'ticket_opened';

-- One row per erasure: the pseudonym, the tickets, who asked and when. Never the customer
-- id, not even hashed: a hash of a phone number or an account number is guessed back.
CREATE TABLE erasures (
    pseudonym     text        PRIMARY KEY,
    tickets       text[]      NOT NULL,
    requested_by  text        NOT NULL,
    erased_at     timestamptz NOT NULL,
    counts        jsonb       NOT NULL
);
