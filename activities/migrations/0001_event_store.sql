-- Event store, ticket read model, permanent intake dedupe and the outbox.
--
-- Applied once by activities.database.migrate() inside a transaction; never edit this
-- file after it has shipped (migrate() refuses a changed checksum): add 0002_*.sql.

-- ---------------------------------------------------------------- ticket_events
-- The source of truth. A ticket workflow numbers its events 1, 2, 3, ...; the unique
-- (ticket_id, seq) makes a retried append a no-op. `transaction_id` lets a catch-up
-- reader skip rows of transactions still in flight: bigserial values are handed out
-- before commit, so "global_position > checkpoint" alone would miss a slow transaction's
-- rows for good (read only rows whose transaction_id < pg_snapshot_xmin(pg_current_snapshot())).
CREATE TABLE ticket_events (
    global_position bigserial   PRIMARY KEY,
    ticket_id       text        NOT NULL,
    seq             integer     NOT NULL CHECK (seq >= 1),
    type            text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    actor_id        text        NOT NULL,
    actor_role      text        NOT NULL,
    data            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT ticket_events_ticket_seq UNIQUE (ticket_id, seq)
);

-- By ticket: served by the unique (ticket_id, seq) index.
-- Metrics ("CSAT this week", "verification-code tickets in the last 24 h"):
CREATE INDEX ticket_events_type_occurred_at ON ticket_events (type, occurred_at);

-- Facts are never rewritten: corrections are new events. The guard also covers TRUNCATE,
-- so a stray maintenance script cannot wipe history; an operator who really means it
-- must disable the trigger explicitly.
CREATE FUNCTION ticket_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ticket_events is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER ticket_events_append_only
    BEFORE UPDATE OR DELETE ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION ticket_events_refuse_change();

CREATE TRIGGER ticket_events_no_truncate
    BEFORE TRUNCATE ON ticket_events
    FOR EACH STATEMENT EXECUTE FUNCTION ticket_events_refuse_change();

-- ---------------------------------------------------------------- tickets (read model)
-- One row per ticket, rebuilt from ticket_events by activities.projection.project().
-- last_seq is the projection's checkpoint: only events with a higher seq are applied.
CREATE TABLE tickets (
    ticket_id              text        PRIMARY KEY,
    status                 text        NOT NULL,
    priority               text,
    category               text,
    topic                  text,
    channel                text,
    tier                   text,
    customer_id            text,
    tag                    text,
    assignee               text,
    departments            text[]      NOT NULL DEFAULT '{}',
    transfers              integer     NOT NULL DEFAULT 0,
    sla_due_at             timestamptz,
    sla_breached           boolean     NOT NULL DEFAULT false,
    escalated              boolean     NOT NULL DEFAULT false,
    root_cause             text,
    reopen_count           integer     NOT NULL DEFAULT 0,
    first_response_seconds double precision,
    opened_at              timestamptz,
    first_response_at      timestamptz,
    resolved_at            timestamptz,
    closed_at              timestamptz,
    close_reason           text,
    csat                   smallint,
    nps                    smallint,
    last_seq               integer     NOT NULL,
    updated_at             timestamptz NOT NULL
);

-- Operator and dashboard filters, each ending in opened_at for "newest first" pages.
CREATE INDEX tickets_status_priority ON tickets (status, priority, opened_at);
CREATE INDEX tickets_priority ON tickets (priority, opened_at);
CREATE INDEX tickets_category ON tickets (category, topic, opened_at);
CREATE INDEX tickets_tier ON tickets (tier, opened_at);
CREATE INDEX tickets_opened_at ON tickets (opened_at);
CREATE INDEX tickets_departments ON tickets USING gin (departments);
-- "Open tickets about to miss their SLA": small, because closed tickets drop out.
CREATE INDEX tickets_open_sla_due ON tickets (sla_due_at) WHERE status <> 'closed';

-- ---------------------------------------------------------------- intake_keys
-- Temporal forgets a closed workflow id after retention; this table never forgets, so
-- the same idempotency key yields the same ticket for ever.
CREATE TABLE intake_keys (
    idempotency_key text        PRIMARY KEY,
    ticket_id       text        NOT NULL,
    run_id          text        NOT NULL,
    channel         text        NOT NULL,
    created_at      timestamptz NOT NULL
);

-- ---------------------------------------------------------------- outbox
-- Hand-off point for SMS/push/mail and the department systems: a relay reads the
-- undispatched rows, delivers them, and sets dispatched_at. dedupe_key makes a retried
-- activity enqueue nothing twice.
CREATE TABLE outbox (
    id                   bigserial   PRIMARY KEY,
    ticket_id            text        NOT NULL,
    dedupe_key           text        NOT NULL UNIQUE,
    kind                 text        NOT NULL,
    channel_or_recipient text        NOT NULL,
    payload              jsonb       NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    dispatched_at        timestamptz
);

CREATE INDEX outbox_undispatched ON outbox (id) WHERE dispatched_at IS NULL;
CREATE INDEX outbox_ticket ON outbox (ticket_id);
