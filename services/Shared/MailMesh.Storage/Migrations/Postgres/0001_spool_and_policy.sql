-- MailMesh schema 1: the spool (messages, recipients, attempt history) and the policy tables.
-- Applied by PostgresSchemaMigrator in one transaction under an advisory lock.

CREATE SCHEMA IF NOT EXISTS spool;
CREATE SCHEMA IF NOT EXISTS policy;

-- One row per accepted message: the envelope (RFC 5321 §3.3 MAIL parameters, RFC 3461 ENVID/RET) and the
-- content exactly as it will be sent. completed_at is set when the last recipient reaches a final state.
CREATE TABLE spool.messages (
    id              uuid        PRIMARY KEY,
    sender          text        NOT NULL,
    content         bytea       NOT NULL,
    size            bigint      NOT NULL,
    received_at     timestamptz NOT NULL,
    origin          smallint    NOT NULL,
    client_address  text,
    client_helo     text,
    auth_user       text,
    body_type       smallint    NOT NULL,
    smtputf8        boolean     NOT NULL,
    requiretls      boolean     NOT NULL,
    envid           text,
    ret             text,
    trace_parent    text,
    completed_at    timestamptz
);

CREATE INDEX messages_completed_at ON spool.messages (completed_at) WHERE completed_at IS NOT NULL;

-- One row per recipient: its delivery state. Rows are updated on every attempt, so leave room on each page.
-- state: 0 queued, 1 in flight, 2 deferred, 3 delivered, 4 bounced, 5 expired, 6 suppressed.
CREATE TABLE spool.recipients (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id          uuid        NOT NULL REFERENCES spool.messages (id) ON DELETE CASCADE,
    address             text        NOT NULL,
    domain              text        NOT NULL,
    state               smallint    NOT NULL,
    attempts            integer     NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL,
    lease_id            uuid,
    lease_expires_at    timestamptz,
    last_reply_code     smallint,
    last_enhanced_code  text,
    last_reply_text     text,
    last_remote_host    text,
    notify              text,
    orcpt               text,
    updated_at          timestamptz NOT NULL
) WITH (fillfactor = 80);

CREATE INDEX recipients_message_id ON spool.recipients (message_id);

-- The due-work query reads these two small partial indexes in order and stops at LIMIT: final recipients
-- (the vast majority of rows) are in neither.
CREATE INDEX recipients_due ON spool.recipients (next_attempt_at) WHERE state IN (0, 2);
CREATE INDEX recipients_lease ON spool.recipients (lease_expires_at) WHERE state = 1;

-- One row per completed attempt of one recipient.
CREATE TABLE spool.attempts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient_id    bigint      NOT NULL REFERENCES spool.recipients (id) ON DELETE CASCADE,
    attempted_at    timestamptz NOT NULL,
    reply_code      smallint,
    enhanced_code   text,
    reply_text      text,
    remote_host     text,
    state           smallint    NOT NULL
);

CREATE INDEX attempts_recipient_id ON spool.attempts (recipient_id, attempted_at);

-- Addresses are stored lower-cased (see IPolicyStore).
CREATE TABLE policy.suppressions (
    address     text        PRIMARY KEY,
    reason      text        NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE INDEX suppressions_created_at ON policy.suppressions (created_at DESC, address);

-- Fixed-window rate counters. expires_at = window_start + window length, so old windows can be pruned
-- without knowing each key's window.
CREATE TABLE policy.counters (
    key           text        NOT NULL,
    window_start  timestamptz NOT NULL,
    count         bigint      NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (key, window_start)
);

CREATE INDEX counters_expires_at ON policy.counters (expires_at);
