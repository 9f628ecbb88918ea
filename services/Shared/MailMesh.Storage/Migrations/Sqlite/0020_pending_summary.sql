-- MailMesh schema 20 for SQLite: the recipient's copy of its message's received time (unix milliseconds) and the
-- partial index the queue summary reads without joining spool_messages (see the PostgreSQL script). Only pending
-- recipients are back-filled; rows already final keep NULL until purged.
ALTER TABLE spool_recipients ADD COLUMN received_at INTEGER;

UPDATE spool_recipients SET received_at = (SELECT m.received_at FROM spool_messages AS m WHERE m.id = spool_recipients.message_id)
WHERE state IN (0, 1, 2, 7);

CREATE INDEX spool_recipients_pending ON spool_recipients (domain, state, received_at) WHERE state IN (0, 1, 2, 7);
