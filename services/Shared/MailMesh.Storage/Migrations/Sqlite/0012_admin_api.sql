-- MailMesh schema 12 for SQLite: the admin API's indexes, the held state and the audit trail (see the PostgreSQL script).
CREATE INDEX spool_messages_received ON spool_messages (received_at DESC, id DESC);
-- NOCASE collation, not lower(): an expression index on spool_messages would make SQLite refuse the incremental blob
-- writes that store large contents ("cannot open indexed column for writing").
CREATE INDEX spool_messages_sender_received ON spool_messages (sender COLLATE NOCASE, received_at DESC, id DESC);
CREATE INDEX spool_recipients_address ON spool_recipients (address COLLATE NOCASE);
CREATE INDEX spool_recipients_domain_state ON spool_recipients (domain, state);
CREATE INDEX spool_recipients_held ON spool_recipients (message_id) WHERE state = 7;

CREATE TABLE spool_admin_audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    changed     INTEGER NOT NULL,
    skipped     INTEGER NOT NULL
);
