-- MailMesh schema 12: the admin API (issue 12): indexes for message search with keyset pagination, the held state,
-- and the audit trail of operators' actions.
--
-- Message search walks spool.messages newest first, (received_at, id) being the keyset; a sender filter walks its own
-- index in the same order. Recipient filters (address, domain, state) are checked per message through
-- recipients_message_id, or, when selective, drive the search from these indexes.
CREATE INDEX messages_received ON spool.messages (received_at DESC, id DESC);
CREATE INDEX messages_sender_received ON spool.messages (lower(sender), received_at DESC, id DESC);
CREATE INDEX recipients_address ON spool.recipients (lower(address));
CREATE INDEX recipients_domain_state ON spool.recipients (domain, state);

-- state 7 (held): an operator's hold. The scheduler claims only states 0, 2 and expired 1, so a held recipient waits
-- here until released; this partial index keeps "what is held" cheap.
CREATE INDEX recipients_held ON spool.recipients (message_id) WHERE state = 7;

-- One row per admin action: who (the admin key's name), what, when, on which ids or filter, and how many changed.
CREATE TABLE spool.admin_audit (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL,
    changed     integer     NOT NULL,
    skipped     integer     NOT NULL
);
