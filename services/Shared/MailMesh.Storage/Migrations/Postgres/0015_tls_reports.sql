-- MailMesh schema 15: SMTP TLS reporting (RFC 8460). Every Delivery replica adds its counts of TLS outcomes here, so a
-- policy domain gets one daily aggregate report however many replicas delivered to it.
--
-- One row per (UTC day, policy domain, row key): the row key is a SHA-256 of the policy (type and strings) and, for a
-- failure, its details (result type, MX host, receiving IP, additional information); result_type '' is the success
-- count of that policy.
CREATE TABLE spool.tls_report_counts (
    day             date   NOT NULL,
    policy_domain   text   NOT NULL,
    row_key         text   NOT NULL,
    policy_type     text   NOT NULL,
    policy_strings  text   NOT NULL,
    result_type     text   NOT NULL,
    mx_host         text   NOT NULL,
    receiving_ip    text   NOT NULL,
    detail          text   NOT NULL,
    count           bigint NOT NULL,
    PRIMARY KEY (day, policy_domain, row_key)
);

-- The report of one day for one domain is sent by the one replica that inserts its row here.
CREATE TABLE spool.tls_reports_sent (
    day             date        NOT NULL,
    policy_domain   text        NOT NULL,
    report_id       text        NOT NULL,
    claimed_at      timestamptz NOT NULL,
    PRIMARY KEY (day, policy_domain)
);
