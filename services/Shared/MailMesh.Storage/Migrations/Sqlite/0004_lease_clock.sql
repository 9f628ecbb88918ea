-- MailMesh schema 4 for SQLite: the lease clock (see the PostgreSQL script). beat_at in unix milliseconds.
CREATE TABLE spool_lease_clock (
    id              INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    beat_at         INTEGER
);

INSERT INTO spool_lease_clock (id, beat_at) VALUES (1, NULL) ON CONFLICT (id) DO NOTHING;
