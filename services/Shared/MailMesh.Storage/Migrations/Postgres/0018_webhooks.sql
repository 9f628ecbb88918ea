-- MailMesh schema 18: webhook endpoints made through the admin API (issue 12), next to the ones in configuration
-- (Queue:Webhooks), and the history of every POST to them. The secret signs each request (HMAC-SHA256), so it is kept
-- as it is; the admin API shows it only once, when it is made. Every Queue replica reads the enabled endpoints.
CREATE TABLE spool.webhook_endpoints (
    id          uuid        PRIMARY KEY,
    url         text        NOT NULL,
    secret      text,
    events      text,
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL,
    created_by  text        NOT NULL,
    updated_at  timestamptz,
    updated_by  text
);

-- One row per POST attempt (retries too). Pages are read per endpoint by id, newest first; rows older than
-- Queue:Webhooks:HistoryRetention are pruned by time. Deleting an endpoint deletes its history.
CREATE TABLE spool.webhook_deliveries (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id  uuid        NOT NULL REFERENCES spool.webhook_endpoints (id) ON DELETE CASCADE,
    event_id     text        NOT NULL,
    event_type   text        NOT NULL,
    message_id   uuid,
    at           timestamptz NOT NULL,
    status_code  integer,
    error        text,
    duration_ms  integer     NOT NULL
);

CREATE INDEX webhook_deliveries_endpoint ON spool.webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_at ON spool.webhook_deliveries (at);
