-- MailMesh schema 14: traffic shaping (issue 11), shared by every Delivery replica and read by Queue's admin API.
--
-- Site actions: a suspension of a site (or of one source IP at a site), or a lowered limit, until a time. Written by
-- Delivery's automation rules and by operators (admin API); every Delivery replica reads the live ones.
CREATE SCHEMA IF NOT EXISTS shaping;

CREATE TABLE shaping.site_actions (
    id                  uuid        PRIMARY KEY,
    site                text        NOT NULL,
    source_ip           text        NULL,       -- NULL: every source IP
    kind                text        NOT NULL,   -- 'suspend' or 'limit'
    max_connections     integer     NULL,       -- kind 'limit': the lowered connection limit
    messages_per_second double precision NULL,  -- kind 'limit': the lowered message rate
    created_at          timestamptz NOT NULL,
    until               timestamptz NOT NULL,
    reason              text        NOT NULL,
    created_by          text        NOT NULL
);
CREATE INDEX site_actions_until ON shaping.site_actions (until);

-- Connection leases: one row per open SMTP connection to a budget (site and source IP), held by the connection's
-- replica until it closes, renewed while open; a replica that dies leaves rows that expire.
CREATE TABLE shaping.connection_slots (
    budget_key  text        NOT NULL,
    slot        integer     NOT NULL,
    holder      uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (budget_key, slot)
);
CREATE INDEX connection_slots_holder ON shaping.connection_slots (holder);

-- Token buckets (message rate, connection rate), one row per budget, updated with one statement per take.
CREATE TABLE shaping.buckets (
    budget_key  text             PRIMARY KEY,
    tokens      double precision NOT NULL,
    updated_at  timestamptz      NOT NULL
);

-- Automation rule hits in fixed windows ("2 matches per hour").
CREATE TABLE shaping.rule_hits (
    hit_key      text        NOT NULL,
    window_start timestamptz NOT NULL,
    hits         bigint      NOT NULL,
    PRIMARY KEY (hit_key, window_start)
);
