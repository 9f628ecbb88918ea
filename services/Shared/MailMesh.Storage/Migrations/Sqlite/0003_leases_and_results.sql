-- MailMesh schema 3 for SQLite: lease ownership and the result outbox (see the PostgreSQL script).
ALTER TABLE spool_recipients ADD COLUMN lease_owner BLOB;

CREATE TABLE spool_results (
    lease_id        BLOB    NOT NULL PRIMARY KEY,
    message_id      BLOB    NOT NULL REFERENCES spool_messages (id) ON DELETE CASCADE,
    payload         TEXT    NOT NULL,
    trace_parent    TEXT,
    created_at      INTEGER NOT NULL,
    next_try_at     INTEGER NOT NULL,
    tries           INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX spool_results_next_try_at ON spool_results (next_try_at);
CREATE INDEX spool_results_message_id ON spool_results (message_id);
