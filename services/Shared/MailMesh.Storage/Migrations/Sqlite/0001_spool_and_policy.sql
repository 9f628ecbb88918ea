-- MailMesh schema 1 for SQLite: the same tables as PostgreSQL, prefixed instead of schema-qualified.
-- Timestamps are unix milliseconds (INTEGER); uuids are 16-byte BLOBs; booleans are 0/1.

CREATE TABLE spool_messages (
    id              BLOB    NOT NULL PRIMARY KEY,
    sender          TEXT    NOT NULL,
    content         BLOB    NOT NULL,
    size            INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    origin          INTEGER NOT NULL,
    client_address  TEXT,
    client_helo     TEXT,
    auth_user       TEXT,
    body_type       INTEGER NOT NULL,
    smtputf8        INTEGER NOT NULL,
    requiretls      INTEGER NOT NULL,
    envid           TEXT,
    ret             TEXT,
    trace_parent    TEXT,
    completed_at    INTEGER
);

CREATE INDEX spool_messages_completed_at ON spool_messages (completed_at) WHERE completed_at IS NOT NULL;

CREATE TABLE spool_recipients (
    id                  INTEGER PRIMARY KEY,
    message_id          BLOB    NOT NULL REFERENCES spool_messages (id) ON DELETE CASCADE,
    address             TEXT    NOT NULL,
    domain              TEXT    NOT NULL,
    state               INTEGER NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     INTEGER NOT NULL,
    lease_id            BLOB,
    lease_expires_at    INTEGER,
    last_reply_code     INTEGER,
    last_enhanced_code  TEXT,
    last_reply_text     TEXT,
    last_remote_host    TEXT,
    notify              TEXT,
    orcpt               TEXT,
    updated_at          INTEGER NOT NULL
);

CREATE INDEX spool_recipients_message_id ON spool_recipients (message_id);
CREATE INDEX spool_recipients_due ON spool_recipients (next_attempt_at) WHERE state IN (0, 2);
CREATE INDEX spool_recipients_lease ON spool_recipients (lease_expires_at) WHERE state = 1;

CREATE TABLE spool_attempts (
    id              INTEGER PRIMARY KEY,
    recipient_id    INTEGER NOT NULL REFERENCES spool_recipients (id) ON DELETE CASCADE,
    attempted_at    INTEGER NOT NULL,
    reply_code      INTEGER,
    enhanced_code   TEXT,
    reply_text      TEXT,
    remote_host     TEXT,
    state           INTEGER NOT NULL
);

CREATE INDEX spool_attempts_recipient_id ON spool_attempts (recipient_id, attempted_at);

CREATE TABLE policy_suppressions (
    address     TEXT    NOT NULL PRIMARY KEY,
    reason      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX policy_suppressions_created_at ON policy_suppressions (created_at DESC, address);

CREATE TABLE policy_counters (
    key           TEXT    NOT NULL,
    window_start  INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
) WITHOUT ROWID;

CREATE INDEX policy_counters_expires_at ON policy_counters (expires_at);
