-- MailMesh schema 22: message search by recipient state and bounce class walks an index newest first and stops at the
-- page (issue 12). Before, "state bounced, class InvalidRecipient" took every bounced recipient (old, spread over the
-- whole spool), looked up each message and sorted: 0.6-1.1 s over HTTP, 2.5-2.9 s cold in EXPLAIN, at a million
-- messages; a state that matches few recent messages made the newest-first walk over the messages probe the whole
-- spool (docs/performance.md).
--
-- recipients_state replaces recipients_pending (0020): the same entries for pending recipients, and one more per
-- recipient, written once when it becomes final. Keyed (state, received_at DESC, message_id DESC), it returns one state's recipients in the search's
-- order, so a search merges one such range per state and stops after the page; domain and the bounce class are carried
-- (INCLUDE) so that a domain or class filter on top is checked in the index. The queue summary reads its pending range
-- (state IN (0, 1, 2, 7)) index-only and groups by hashing about 8,000 (domain, state) groups. Cost on the hot path:
-- recipients_pending took an entry per accepted recipient and per change between pending states (recipient updates
-- are not HOT: state is indexed); recipients_state takes the same entries and one more when the recipient becomes final.
--
-- It is partial on received_at IS NOT NULL, which every row written since 0020 satisfies (and older ones once
-- back-filled), so it holds every recipient; but no statement of the delivery path names received_at, so none of them
-- can use it, and their plans (recipients_due, recipients_lease) stay as they were. (SQLite, which plans without
-- statistics, took a plain state index for the due-work query and sorted.) The search and the summary name it.
--
-- recipients_final_class holds only final recipients with a class (bounced, expired; 1-2% of the spool): a search by
-- class walks one class newest first. It takes one entry when such a recipient becomes final, never on a retry; pending
-- recipients with a class (deferred, QuotaIssues) are found through recipients_state's pending ranges.
DROP INDEX spool.recipients_pending;
CREATE INDEX recipients_state ON spool.recipients (state, received_at DESC, message_id DESC) INCLUDE (domain, last_bounce_class)
    WHERE received_at IS NOT NULL;
CREATE INDEX recipients_final_class ON spool.recipients (last_bounce_class, received_at DESC, message_id DESC) INCLUDE (state, domain)
    WHERE state IN (3, 4, 5, 6) AND last_bounce_class IS NOT NULL;

-- Recipients that were already final when 0020 ran have received_at NULL, and the search must find them too. They are
-- filled after this transaction commits, in batches of ids that are each their own short transaction
-- (PostgresBackfill, run by the migrator), not here: one UPDATE of a million final rows inside the migration would
-- hold their row locks (and the index builds' SHARE lock, which stops every insert and update of recipients) for
-- minutes. This row is the work left: ids from next_id to last_id; the migrator deletes it when done, and until then
-- the search keeps its old statement, which does not read recipients.received_at.
CREATE TABLE spool.backfills (
    name        text    PRIMARY KEY,
    next_id     bigint  NOT NULL,
    last_id     bigint  NOT NULL
);

INSERT INTO spool.backfills (name, next_id, last_id)
SELECT 'recipients.received_at', b.first_id, b.last_id
FROM (SELECT min(id) AS first_id, max(id) AS last_id FROM spool.recipients) AS b
WHERE b.first_id IS NOT NULL;
