-- MailMesh schema 17: API keys made through the admin API (issue 12), next to the ones in configuration. Only the
-- SHA-256 of a key is kept. A disabled key keeps its row, so the list says who disabled it and when.
CREATE TABLE spool.api_keys (
    kind            smallint    NOT NULL,
    name            text        NOT NULL,
    hash            text        NOT NULL UNIQUE,
    scopes          text        NOT NULL DEFAULT '',
    sender_domains  text,
    created_at      timestamptz NOT NULL,
    created_by      text        NOT NULL,
    disabled_at     timestamptz,
    disabled_by     text,
    PRIMARY KEY (kind, name)
);
