-- MailMesh schema 26: recipients_pending no longer holds the in-flight recipients (issue 8).
--
-- The claim reads every in-flight recipient (state 1) for the window's counts and the expired leases. It should read
-- them through recipients_in_flight (0025), but recipients_pending (0020) held state 1 too, and the planner took a
-- bitmap of it, by its second key column, with the same row estimate. A recipient's update from in flight to delivered
-- leaves its old entry in recipients_pending until vacuum (the state is a key column there, so the btree's bottom-up
-- deletion does not run; a bitmap scan never marks an entry dead): in a paced distributed run at 570 mails a second one
-- such bitmap read 10,100 entries and 463 heap pages for 30 in-flight recipients, 546 of the claim's 1,118 buffers,
-- and the claim took 6 ms. recipients_in_flight is keyed by message_id, which no update changes, so bottom-up
-- deletion keeps it to about what is in flight (271-281 entries for 64 live in the same run).
--
-- Without state 1 this index cannot serve that read, and the claim (queued or deferred to in flight) no longer writes
-- an entry into it. The queue summary, its one reader, reads the pending states here and the in-flight ones (the
-- window's worth) through recipients_in_flight.
--
-- The new index is built before the old one is dropped: the build holds a SHARE lock (reads go on, writes wait for it),
-- and the ACCESS EXCLUSIVE lock that DROP INDEX takes is held only for the short rest of the migration's transaction.
-- Dropped first, the build would run under that lock and stop every read of the recipients too.
CREATE INDEX recipients_pending_0026 ON spool.recipients (domain, state, received_at) WHERE state IN (0, 2, 7);
DROP INDEX spool.recipients_pending;
ALTER INDEX spool.recipients_pending_0026 RENAME TO recipients_pending;
