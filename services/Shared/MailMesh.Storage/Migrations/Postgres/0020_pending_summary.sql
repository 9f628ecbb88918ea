-- MailMesh schema 20: the queue summary (GET /api/v1/admin/queue/summary, `mailmesh queue`: pending recipients by
-- destination domain, state and age) without a join to spool.messages (issue 12).
--
-- A recipient carries its message's received time, written by the spool's store statement in the same INSERT (the
-- time never changes after that). The summary then reads only recipients_pending, a small partial index on the
-- pending states (0 queued, 1 in flight, 2 deferred, 7 held) that holds every column it needs, instead of hashing
-- every pending recipient against a million messages (465-860 ms at 75,000 pending recipients; docs/performance.md).
--
-- Only pending rows are back-filled: a final recipient (delivered, bounced, expired, suppressed) never becomes pending
-- again, and nothing reads this column outside the pending states, so rows already final keep NULL until the
-- completed-message purge removes them. The back-fill is then O(pending), not a rewrite of the whole table under the
-- migration's lock.
ALTER TABLE spool.recipients ADD COLUMN received_at timestamptz;

UPDATE spool.recipients AS r SET received_at = m.received_at
FROM spool.messages AS m
WHERE m.id = r.message_id AND r.state IN (0, 1, 2, 7);

CREATE INDEX recipients_pending ON spool.recipients (domain, state, received_at) WHERE state IN (0, 1, 2, 7);
