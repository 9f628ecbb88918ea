-- MailMesh schema 22 for SQLite: the recipients' state index and the final recipients' class index that message search
-- by state and bounce class walks newest first (see the PostgreSQL script). SQLite has no INCLUDE: domain and the class
-- are trailing key columns, after the three the search orders by.
--
-- spool_recipients_state is partial on received_at IS NOT NULL (every row, once back-filled): without it SQLite, which
-- has no statistics, chose it for the due-work query (state IN (0, 2) ORDER BY next_attempt_at) over
-- spool_recipients_due and sorted. No statement of the delivery path names received_at, so none can use it.
--
-- The back-fill of received_at for recipients that were final before 0020 is one statement here: a SQLite spool belongs
-- to one Standalone process, which migrates before it accepts mail or serves the admin API, so no other writer waits
-- for it (one pass over the table, a few seconds per million recipients). It runs before the new indexes exist, and
-- touches only final recipients, which the pending index (0020, the only one that held received_at) does not hold, so
-- it rewrites no index entry. The pending index stays for the queue summary, as on PostgreSQL.

UPDATE spool_recipients SET received_at = (SELECT m.received_at FROM spool_messages AS m WHERE m.id = spool_recipients.message_id)
WHERE received_at IS NULL;

CREATE INDEX spool_recipients_state ON spool_recipients (state, received_at DESC, message_id DESC, domain, last_bounce_class)
    WHERE received_at IS NOT NULL;
CREATE INDEX spool_recipients_final_class ON spool_recipients (last_bounce_class, received_at DESC, message_id DESC, state, domain)
    WHERE state IN (3, 4, 5, 6) AND last_bounce_class IS NOT NULL;
