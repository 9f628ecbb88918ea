-- MailMesh schema 25: a lease's own changes are HOT updates (issue 8).
-- Delivery takes a lease (lease_owner and a later lease_expires_at), renews it and records its result (no expiry): three
-- updates of a recipient that change neither its state nor anything else an index reads, except that recipients_lease
-- indexed lease_expires_at. So none of them was a heap-only update: each wrote a new entry into every one of the table's
-- ten indexes (pg_stat_user_tables under load: four updates per mail, none HOT). The claim now finds live and expired
-- leases through an index of the in-flight recipients, which no lease change touches, and each page keeps a fifth
-- free, so the new version of a row can go on its page beside the old one. The in-flight recipients are what the claim
-- window (Queue:MaxJobsInFlight) holds plus results not yet applied, so reading all of them for the expired ones costs
-- what the window holds. The claim itself and the applied result change state, which seven indexes read, and stay full
-- updates: in the load tool's paced distributed run 2 of the 4 updates per mail are now HOT (0 before).
--
-- The index is keyed by message_id because the lease statements (take, renew, record) find their rows by message_id,
-- lease_id and state = 1, and the planner may take this small partial index for them rather than recipients_message_id:
-- keyed by domain, as first written, it then read every in-flight recipient for each lease statement (1,200 index
-- entries per scan in a paced run, 33 million in 50 s). Keyed by message_id it is as good for them as the full index.
DROP INDEX spool.recipients_lease;
CREATE INDEX recipients_in_flight ON spool.recipients (message_id) WHERE state = 1;
ALTER TABLE spool.recipients SET (fillfactor = 80);
