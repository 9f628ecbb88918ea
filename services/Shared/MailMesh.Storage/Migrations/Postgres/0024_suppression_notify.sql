-- MailMesh schema 24: every suppression written (inserted, or updated by a second suppression of the address) is
-- announced on the channel mailmesh_suppressions, with the address as the payload. NOTIFY is transactional: a listener
-- hears of a row when, and only when, its transaction commits, whichever process or tool wrote it. Each Ingress keeps
-- the set of suppressed addresses in memory from this (PostgresSuppressionFilter), so a recipient that is not on the
-- list costs no query at RCPT (issue 8: that query was the largest part of the accept latency's tail).
-- A payload must be shorter than 8000 bytes: an address that long (no real one is) is announced empty, which tells
-- the listeners to read the table again, so the row is still written and still seen.
CREATE FUNCTION policy.announce_suppression() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mailmesh_suppressions', CASE WHEN octet_length(NEW.address) < 7900 THEN NEW.address ELSE '' END);
    RETURN NULL;
END
$$;

CREATE TRIGGER suppressions_announce
    AFTER INSERT OR UPDATE OF address ON policy.suppressions
    FOR EACH ROW EXECUTE FUNCTION policy.announce_suppression();
