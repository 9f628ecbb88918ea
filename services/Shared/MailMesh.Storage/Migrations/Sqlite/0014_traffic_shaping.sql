-- MailMesh schema 14 for SQLite: traffic shaping's site actions and rule hits (see the PostgreSQL script). One process
-- owns a SQLite store, so connection leases and token buckets stay in that process's memory: no tables for them.
CREATE TABLE shaping_site_actions (
    id                  TEXT    PRIMARY KEY,
    site                TEXT    NOT NULL,
    source_ip           TEXT    NULL,
    kind                TEXT    NOT NULL,
    max_connections     INTEGER NULL,
    messages_per_second REAL    NULL,
    created_at          INTEGER NOT NULL,
    until               INTEGER NOT NULL,
    reason              TEXT    NOT NULL,
    created_by          TEXT    NOT NULL
);
CREATE INDEX shaping_site_actions_until ON shaping_site_actions (until);

CREATE TABLE shaping_rule_hits (
    hit_key      TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    hits         INTEGER NOT NULL,
    PRIMARY KEY (hit_key, window_start)
);
