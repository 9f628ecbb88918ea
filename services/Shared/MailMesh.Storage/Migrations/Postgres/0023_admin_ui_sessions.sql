-- MailMesh schema 23: what the admin UI's replicas share (issue 12), so that any number of them can run behind one
-- load balancer. A login's cookie is protected with ASP.NET Core Data Protection keys; the key ring lives here, so a
-- cookie (and an antiforgery token) made by one replica is read by every other, and survives restarts. Failed logins
-- are counted here by account name (lower case), with one atomic upsert per failure, so that failures spread over the
-- replicas lock the account after Admin:Ui:MaxFailedLogins in total, everywhere.
CREATE TABLE spool.admin_ui_login_failures (
    name            text        PRIMARY KEY,
    failures        integer     NOT NULL,
    locked_until    timestamptz,
    last_failed_at  timestamptz NOT NULL
);
CREATE INDEX admin_ui_login_failures_last_failed ON spool.admin_ui_login_failures (last_failed_at);

-- One row per key (the XML that Data Protection writes: key material unencrypted, as with its file system default;
-- whoever reads this table can forge a UI session, so it is guarded like the rest of the database).
CREATE TABLE spool.admin_ui_keys (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    friendly_name   text,
    xml             text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
