-- MailMesh schema 15 for SQLite: SMTP TLS reporting counts and the reports sent (see the PostgreSQL script). Days are
-- ISO dates ('2026-12-02').
CREATE TABLE spool_tls_report_counts (
    day             TEXT    NOT NULL,
    policy_domain   TEXT    NOT NULL,
    row_key         TEXT    NOT NULL,
    policy_type     TEXT    NOT NULL,
    policy_strings  TEXT    NOT NULL,
    result_type     TEXT    NOT NULL,
    mx_host         TEXT    NOT NULL,
    receiving_ip    TEXT    NOT NULL,
    detail          TEXT    NOT NULL,
    count           INTEGER NOT NULL,
    PRIMARY KEY (day, policy_domain, row_key)
);

CREATE TABLE spool_tls_reports_sent (
    day             TEXT    NOT NULL,
    policy_domain   TEXT    NOT NULL,
    report_id       TEXT    NOT NULL,
    claimed_at      INTEGER NOT NULL,
    PRIMARY KEY (day, policy_domain)
);
