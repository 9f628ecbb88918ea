-- MailMesh schema 22: message search by recipient state and bounce class walks an index newest first and stops at the
-- page (issue 12). Before, "state bounced, class InvalidRecipient" took every bounced recipient (old, spread over the
-- whole spool), looked up each message and sorted: 0.6-1.1 s over HTTP, 2.5-2.9 s cold in EXPLAIN, at a million
-- messages; a state that matches few recent messages made the newest-first walk over the messages probe the whole
-- spool (docs/performance.md).
--
-- recipients_state holds every recipient, keyed (state, received_at DESC, message_id DESC): it returns one state's
-- recipients in the search's order, so a search merges one such range per state and stops after the page; domain and
-- the bounce class are carried (INCLUDE) so that a domain or class filter on top is checked in the index. Cost on the hot
-- path: an entry per accepted recipient, per change of state (recipient updates are not HOT: state is indexed) and one
-- when the recipient becomes final.
--
-- recipients_pending (0020) stays: the queue summary reads it in (domain, state) order and aggregates as it goes. The
-- first version of this migration dropped it and let the summary read recipients_state's pending range and group by
-- hashing: at a million messages that took the summary over HTTP from 112-141 ms to 259-291 ms at p50 (p99 475-733 ms),
-- over the 300 ms the queue page must answer in (docs/performance.md, session 11). Keeping it costs one more entry per
-- change between pending states.
--
-- It is partial on received_at IS NOT NULL, which every row written since 0020 satisfies (and older ones once
-- back-filled), so it holds every recipient; but no statement of the delivery path names received_at, so none of them
-- can use it, and their plans (recipients_due, recipients_lease) stay as they were. (SQLite, which plans without
-- statistics, took a plain state index for the due-work query and sorted.) The search and the summary name it.
--
-- recipients_final_class holds only final recipients with a class (bounced, expired; 1-2% of the spool): a search by
-- class walks one class newest first. It takes one entry when such a recipient becomes final, never on a retry; pending
-- recipients with a class (deferred, QuotaIssues) are found through recipients_state's pending ranges.
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
