-- MailMesh schema 3: lease ownership and the result outbox (issue 7 §4).
--
-- lease_owner: the one Delivery attempt that took the lease (StartAttemptAsync). A work item redelivered by the
-- broker while its first consumer still runs carries the same lease id but cannot take it again, and a lease
-- re-issued by the scheduler (new lease_id, owner cleared) cannot be renewed or used by the old attempt.
--
-- A recipient in flight whose lease_expires_at is NULL has a recorded result waiting in spool.results: the scheduler
-- never re-claims it, and the window does not count it.
ALTER TABLE spool.recipients ADD COLUMN lease_owner uuid;

-- The result outbox: one row per attempt (its lease), written by Delivery in the transaction that takes its
-- recipients out of the scheduler's reach, applied by Queue (state, DSN, suppression) and deleted only after that.
CREATE TABLE spool.results (
    lease_id        uuid        PRIMARY KEY,
    message_id      uuid        NOT NULL REFERENCES spool.messages (id) ON DELETE CASCADE,
    payload         text        NOT NULL,
    trace_parent    text,
    created_at      timestamptz NOT NULL,
    next_try_at     timestamptz NOT NULL,
    tries           integer     NOT NULL DEFAULT 0
);

CREATE INDEX results_next_try_at ON spool.results (next_try_at);
CREATE INDEX results_message_id ON spool.results (message_id);
