-- MailMesh schema 21: the TLS of each attempt's connection (issue 12: a message's attempts with their TLS details).
-- tls_protocol: TLSv1.2, TLSv1.3, or 'none' for a session that stayed in clear text; tls_cipher: the negotiated cipher
-- suite (IANA name); tls_verification: how the server certificate was verified (dane, mta-sts, webpki) or 'none'.
-- All NULL when no connection carried the attempt, and for attempts recorded before this migration. Nullable columns
-- without a default: no table rewrite.
ALTER TABLE spool.attempts
    ADD COLUMN tls_protocol text,
    ADD COLUMN tls_cipher text,
    ADD COLUMN tls_verification text;

-- The admin dashboard counts attempts per minute over the last hour (ISpoolRates): a range scan of this index, where
-- attempts_recipient_id would mean reading the whole table.
CREATE INDEX attempts_attempted_at ON spool.attempts (attempted_at);
