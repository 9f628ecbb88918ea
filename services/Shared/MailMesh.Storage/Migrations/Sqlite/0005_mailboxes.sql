-- MailMesh schema 5 for SQLite: local mailboxes (see the PostgreSQL script). Timestamps in unix milliseconds, uuids as
-- 16-byte BLOBs, booleans 0/1; one writer at a time, so UIDs come out ascending by construction.
CREATE TABLE mailbox_accounts (
    id              INTEGER PRIMARY KEY,
    address         TEXT    NOT NULL,
    address_key     TEXT    NOT NULL UNIQUE,
    password_hash   TEXT    NOT NULL DEFAULT '',
    disabled        INTEGER NOT NULL DEFAULT 0,
    quota_bytes     INTEGER,
    used_bytes      INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);

CREATE TABLE mailbox_aliases (
    address_key     TEXT    NOT NULL PRIMARY KEY,
    address         TEXT    NOT NULL,
    account_id      INTEGER NOT NULL REFERENCES mailbox_accounts (id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX mailbox_aliases_account_id ON mailbox_aliases (account_id);

CREATE TABLE mailbox_folders (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,     -- never reused: it is the folder's UIDVALIDITY
    account_id      INTEGER NOT NULL REFERENCES mailbox_accounts (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    special_use     INTEGER NOT NULL DEFAULT 0,
    subscribed      INTEGER NOT NULL DEFAULT 1,
    uid_next        INTEGER NOT NULL DEFAULT 1,
    highest_modseq  INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);

CREATE TABLE mailbox_bodies (
    id                  INTEGER PRIMARY KEY,
    spool_message_id    BLOB    UNIQUE,
    content             BLOB    NOT NULL,
    size                INTEGER NOT NULL
);

CREATE TABLE mailbox_messages (
    folder_id       INTEGER NOT NULL REFERENCES mailbox_folders (id) ON DELETE CASCADE,
    uid             INTEGER NOT NULL,
    account_id      INTEGER NOT NULL,
    body_id         INTEGER NOT NULL REFERENCES mailbox_bodies (id),
    prefix          BLOB    NOT NULL,
    size            INTEGER NOT NULL,
    flags           INTEGER NOT NULL DEFAULT 0,
    keywords        TEXT    NOT NULL DEFAULT '',
    internal_date   INTEGER NOT NULL,
    modseq          INTEGER NOT NULL,
    PRIMARY KEY (folder_id, uid)
) WITHOUT ROWID;

CREATE INDEX mailbox_messages_modseq ON mailbox_messages (folder_id, modseq);
CREATE INDEX mailbox_messages_body_id ON mailbox_messages (body_id);

CREATE TABLE mailbox_deliveries (
    spool_message_id    BLOB    NOT NULL,
    recipient_id        INTEGER NOT NULL,
    account_id          INTEGER NOT NULL,
    folder_id           INTEGER NOT NULL,
    uid                 INTEGER NOT NULL,
    delivered_at        INTEGER NOT NULL,
    PRIMARY KEY (spool_message_id, recipient_id)
) WITHOUT ROWID;

CREATE INDEX mailbox_deliveries_delivered_at ON mailbox_deliveries (delivered_at);

CREATE TABLE mailbox_maildrop_locks (
    account_id      INTEGER NOT NULL PRIMARY KEY REFERENCES mailbox_accounts (id) ON DELETE CASCADE,
    holder          BLOB    NOT NULL,
    expires_at      INTEGER NOT NULL
);
