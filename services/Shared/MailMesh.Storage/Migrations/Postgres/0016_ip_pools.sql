-- MailMesh schema 16 (issue 11, IP pools): the source-IP pool a message was submitted for, and the warm-up counters.
-- A message's pool: chosen at submission (HTTP API field "pool", the API key's pool, or an authenticated client's
-- X-MailMesh-Pool header); null lets Delivery choose (Delivery:PoolBySenderDomain, else Delivery:DefaultPool).
ALTER TABLE spool.messages ADD COLUMN pool text;

-- Messages sent from one source address on one UTC day, shared by every Delivery replica: an address in warm-up takes
-- one per message with a conditional upsert that stops at the day's cap (Delivery:Pools:<name>:Addresses:N:WarmUp).
CREATE TABLE spool.pool_counters (
    address text   NOT NULL,
    day     date   NOT NULL,
    sent    bigint NOT NULL,
    PRIMARY KEY (address, day)
);
