-- Signed partner callbacks accepted, remembered to refuse a replay (api/signatures.py):
-- kept for twice the signature tolerance, after which the timestamp alone refuses it.
--
-- The API created this table itself at start until it moved here, hence IF NOT EXISTS: a
-- database that already has it migrates cleanly. The lock is the one that API took around
-- its CREATE, so an API of the previous build starting during this migration waits for it.
SELECT pg_advisory_xact_lock(29798, 6385769);  -- 0x7466 "tf", 0x617069 "api"

CREATE TABLE IF NOT EXISTS api_seen_signatures (
    signature text        PRIMARY KEY,
    partner   text        NOT NULL,
    seen_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS api_seen_signatures_seen_at ON api_seen_signatures (seen_at);
