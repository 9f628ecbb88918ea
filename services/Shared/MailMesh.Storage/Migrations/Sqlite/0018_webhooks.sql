-- MailMesh schema 18 for SQLite: webhook endpoints made through the admin API and their delivery history (see the
-- PostgreSQL script). Times are Unix milliseconds.
CREATE TABLE spool_webhook_endpoints (
    id          TEXT    PRIMARY KEY,
    url         TEXT    NOT NULL,
    secret      TEXT,
    events      TEXT,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    updated_at  INTEGER,
    updated_by  TEXT
);

CREATE TABLE spool_webhook_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id  TEXT    NOT NULL REFERENCES spool_webhook_endpoints (id) ON DELETE CASCADE,
    event_id     TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    message_id   TEXT,
    at           INTEGER NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  INTEGER NOT NULL
);

CREATE INDEX spool_webhook_deliveries_endpoint ON spool_webhook_deliveries (endpoint_id, id);
CREATE INDEX spool_webhook_deliveries_at ON spool_webhook_deliveries (at);
