-- The policy each task queue's workers run with (issue 14): the API compares its own
-- at start and in /readyz, since a ticket keeps the policy of the process that starts it.
CREATE TABLE service_policy (
    task_queue  text        PRIMARY KEY,
    fingerprint text        NOT NULL,
    policy      jsonb       NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now()
);
