-- MailMesh schema 5: local mailboxes (issue 9), owned by the Mailbox service. Applied like every migration: one
-- transaction under the migrator's advisory lock.
--
-- Model (Dovecot/Stalwart-like): an account owns folders; a folder holds messages addressed by UID (RFC 9051
-- §2.3.1.1: strictly ascending, never reused; UIDVALIDITY is the folder's id, so a folder deleted and created again
-- under its name gets a new one). A message is a per-recipient header prefix (Return-Path, Delivered-To, Received)
-- plus a body stored once in bodies and shared by every local recipient of one spool message and by copies.
-- Every write of an account locks its accounts row first, so writes of one account serialise and never deadlock.
CREATE SCHEMA IF NOT EXISTS mailbox;

CREATE TABLE mailbox.accounts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    address         text        NOT NULL,
    address_key     text        NOT NULL UNIQUE,        -- local part lower-cased, domain as A-label
    password_hash   text        NOT NULL DEFAULT '',
    disabled        boolean     NOT NULL DEFAULT false,
    quota_bytes     bigint,
    used_bytes      bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL
);

-- Aliases and catch-alls: address_key is an address key, or '@' || domain for the domain's catch-all.
CREATE TABLE mailbox.aliases (
    address_key     text        PRIMARY KEY,
    address         text        NOT NULL,
    account_id      bigint      NOT NULL REFERENCES mailbox.accounts (id) ON DELETE CASCADE
);

CREATE INDEX aliases_account_id ON mailbox.aliases (account_id);

-- uid_next: the next UID (taken under this row's lock, so UIDs of concurrent writers come out ascending in commit
-- order); highest_modseq: the folder's latest change (RFC 7162).
CREATE TABLE mailbox.folders (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint      NOT NULL REFERENCES mailbox.accounts (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    special_use     integer     NOT NULL DEFAULT 0,
    subscribed      boolean     NOT NULL DEFAULT true,
    uid_next        bigint      NOT NULL DEFAULT 1,
    highest_modseq  bigint      NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);

-- A body, stored once. spool_message_id (local delivery) lets every recipient of one spool message, and a
-- redelivery of it, share the same row; APPEND leaves it NULL. Deleted with its last message.
CREATE TABLE mailbox.bodies (
    id                  bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    spool_message_id    uuid    UNIQUE,
    content             bytea   NOT NULL,
    size                bigint  NOT NULL
);

-- The hot path: listing a folder walks the primary key (folder_id, uid). Rows are small (no bytes but the prefix),
-- and flag changes update them in place: leave room on each page.
CREATE TABLE mailbox.messages (
    folder_id       bigint      NOT NULL REFERENCES mailbox.folders (id) ON DELETE CASCADE,
    uid             bigint      NOT NULL,
    account_id      bigint      NOT NULL,
    body_id         bigint      NOT NULL REFERENCES mailbox.bodies (id),
    prefix          bytea       NOT NULL,
    size            bigint      NOT NULL,                -- length of prefix plus body: RFC822.SIZE
    flags           integer     NOT NULL DEFAULT 0,      -- MessageFlags bits
    keywords        text        NOT NULL DEFAULT '',     -- space-separated keyword atoms
    internal_date   timestamptz NOT NULL,
    modseq          bigint      NOT NULL,
    PRIMARY KEY (folder_id, uid)
) WITH (fillfactor = 90);

CREATE INDEX messages_modseq ON mailbox.messages (folder_id, modseq);
CREATE INDEX messages_body_id ON mailbox.messages (body_id);

-- Exactly-once local delivery: one row per (spool message, spool recipient) stored, written in the transaction that
-- stores the message, so a redelivery under a new lease finds it and stores nothing.
CREATE TABLE mailbox.deliveries (
    spool_message_id    uuid        NOT NULL,
    recipient_id        bigint      NOT NULL,
    account_id          bigint      NOT NULL,
    folder_id           bigint      NOT NULL,
    uid                 bigint      NOT NULL,
    delivered_at        timestamptz NOT NULL,
    PRIMARY KEY (spool_message_id, recipient_id)
);

CREATE INDEX deliveries_delivered_at ON mailbox.deliveries (delivered_at);

-- POP3 maildrop locks (RFC 1939 §8): one holder per account, until expires_at unless renewed.
CREATE TABLE mailbox.maildrop_locks (
    account_id      bigint      PRIMARY KEY REFERENCES mailbox.accounts (id) ON DELETE CASCADE,
    holder          uuid        NOT NULL,
    expires_at      timestamptz NOT NULL
);
