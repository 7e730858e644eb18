-- The weekly review (issue 11): every line of each review (who wrote what, when), and
-- its current state, which the report reads. Written by one activity per drain of the
-- review's workflow; a retried write adds nothing (the primary keys).
CREATE TABLE review_entries (
    review_id   text        NOT NULL,
    seq         integer     NOT NULL,
    occurred_at timestamptz NOT NULL,
    kind        text        NOT NULL,
    actor_id    text        NOT NULL,
    actor_role  text        NOT NULL,
    ticket_id   text,
    follow_up   integer,
    text        text,
    PRIMARY KEY (review_id, seq)
);

CREATE TABLE weekly_reviews (
    review_id    text        PRIMARY KEY,
    week         text        NOT NULL UNIQUE,
    state        jsonb       NOT NULL,
    last_seq     integer     NOT NULL,
    completed_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
