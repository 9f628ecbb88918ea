-- MailMesh schema 24 for SQLite: message contents move out of spool_messages into a table of their own.
-- SQLite rewrites a whole row when any column changes, and a row's columns after a large blob sit behind its overflow
-- pages: setting completed_at read a 100 KB message's 7 overflow pages and wrote 7 new ones (as much WAL as storing it
-- had cost), and every read of trace_parent, pool or completed_at walked the chain. The envelope rows are now small;
-- a content row is written once and deleted with its message. (PostgreSQL keeps contents out of line by itself.)
CREATE TABLE spool_contents (
    id          INTEGER PRIMARY KEY,
    message_id  BLOB    NOT NULL UNIQUE REFERENCES spool_messages (id) ON DELETE CASCADE,
    content     BLOB    NOT NULL
);

INSERT INTO spool_contents (message_id, content) SELECT id, content FROM spool_messages;

ALTER TABLE spool_messages DROP COLUMN content;
