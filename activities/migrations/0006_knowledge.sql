-- The agents' knowledge base (issue 12): FAQ entries and reply scripts, a variant per
-- locale (zh-Hans, zh-Hant, en) in `variants`. Deleting keeps the row (deleted_at), so
-- a ticket that used a script still names an entry that existed.
CREATE TABLE knowledge_entries (
    entry_id   text        PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('faq', 'script')),
    category   text        NOT NULL,
    topic      text        NOT NULL,
    variants   jsonb       NOT NULL,
    tags       text[]      NOT NULL DEFAULT '{}',
    version    integer     NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL,
    deleted_at timestamptz
);
-- "Which scripts answered tickets like this one": agent replies that used a script.
CREATE INDEX ticket_events_script ON ticket_events ((data->>'script_id'))
    WHERE type = 'agent_replied' AND data ? 'script_id';
