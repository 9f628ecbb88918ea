-- MailMesh schema 4: the lease clock (issue 7 §4/§7, duplicates after a PostgreSQL restart).
--
-- One row: the last moment any Queue scheduler reached the spool (its heartbeat, written before a claim). A lease can
-- be neither renewed by Delivery nor re-claimed by the scheduler while the spool is unreachable, so its clock stops
-- then: when a scheduler finds the heartbeat older than Queue:LeaseClockGap, it extends every lease that was still
-- live at that heartbeat by the gap, and moves the heartbeat, in one transaction under this row's lock (so replicas
-- that come back together extend once). NULL: no scheduler has beaten yet.
CREATE TABLE spool.lease_clock (
    id              smallint    PRIMARY KEY CHECK (id = 1),
    beat_at         timestamptz
);

INSERT INTO spool.lease_clock (id, beat_at) VALUES (1, NULL) ON CONFLICT (id) DO NOTHING;
