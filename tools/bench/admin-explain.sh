#!/usr/bin/env bash
# The admin API's message search and queue summary on a PostgreSQL spool of 1,000,000 messages (issue 12): creates the
# database mailmesh_admin_explain, applies every migration, generates the rows, and prints EXPLAIN ANALYZE of each
# query shape the Queue's admin endpoints run. Figures: docs/performance.md. Needs psql and a server that the
# PG* environment variables reach (default: the test server of deploy/scripts/deps.sh).
set -euo pipefail
export PGHOST="${PGHOST:-127.0.0.1}" PGUSER="${PGUSER:-mailmesh}" PGPASSWORD="${PGPASSWORD:-mailmesh}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
db=mailmesh_admin_explain
psql -q -v ON_ERROR_STOP=1 -d "${PGDATABASE:-mailmesh}" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
for f in "$root"/services/Shared/MailMesh.Storage/Migrations/Postgres/*.sql; do psql -q -v ON_ERROR_STOP=1 -d $db -f "$f"; done
psql -q -v ON_ERROR_STOP=1 -d $db <<'SQL'
-- 1,000,000 messages over 30 days from 500 senders, 1-2 recipients each over 2,000 domains (1.5 M recipients);
-- 3% deferred, 1% queued, 1% held, the rest delivered.
INSERT INTO spool.messages (id, sender, content, size, received_at, origin, body_type, smtputf8, requiretls)
SELECT gen_random_uuid(), 'sender' || (i % 500) || '@app.example', '\x00'::bytea, 1000,
       timestamptz '2030-01-01' + (i * interval '2.592 seconds'), 0, 0, false, false
FROM generate_series(1, 1000000) AS i;
INSERT INTO spool.recipients (message_id, address, domain, state, next_attempt_at, updated_at, received_at)
SELECT m.id, 'user' || k || '_' || (abs(hashtext(m.id::text)) % 100000) || '@d' || (abs(hashtext(m.id::text || k)) % 2000) || '.test',
       'd' || (abs(hashtext(m.id::text || k)) % 2000) || '.test',
       CASE WHEN abs(hashtext(m.id::text || 's' || k)) % 100 < 3 THEN 2 WHEN abs(hashtext(m.id::text || 's' || k)) % 100 < 4 THEN 0
            WHEN abs(hashtext(m.id::text || 's' || k)) % 100 < 5 THEN 7 ELSE 3 END,
       m.received_at, m.received_at, m.received_at
FROM spool.messages AS m, generate_series(1, 2) AS k
WHERE k = 1 OR abs(hashtext(m.id::text)) % 2 = 0;
ANALYZE spool.messages;
ANALYZE spool.recipients;
SQL
explain() { echo "=== $1"; psql -q -d $db -c "SET max_parallel_workers_per_gather = 0" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $2" | grep -E "Scan|Join|Execution Time"; }
explain "first page" "SELECT m.id FROM spool.messages AS m ORDER BY m.received_at DESC, m.id DESC LIMIT 51"
explain "a page deep in the list (cursor)" "SELECT m.id FROM spool.messages AS m WHERE (m.received_at, m.id) < ('2030-01-15T00:00:00Z', 'ffffffff-ffff-ffff-ffff-ffffffffffff') ORDER BY m.received_at DESC, m.id DESC LIMIT 51"
explain "sender" "SELECT m.id FROM spool.messages AS m WHERE lower(m.sender) = lower('sender17@app.example') ORDER BY m.received_at DESC, m.id DESC LIMIT 51"
explain "recipient" "SELECT m.id FROM spool.messages AS m WHERE EXISTS (SELECT 1 FROM spool.recipients AS r WHERE r.message_id = m.id AND lower(r.address) = lower('user1_4242@d17.test')) ORDER BY m.received_at DESC, m.id DESC LIMIT 51"
explain "domain" "SELECT m.id FROM spool.messages AS m WHERE EXISTS (SELECT 1 FROM spool.recipients AS r WHERE r.message_id = m.id AND r.domain = 'd17.test') ORDER BY m.received_at DESC, m.id DESC LIMIT 51"
explain "domain and state" "SELECT m.id FROM spool.messages AS m WHERE EXISTS (SELECT 1 FROM spool.recipients AS r WHERE r.message_id = m.id AND r.domain = 'd17.test' AND r.state = ANY('{2}')) ORDER BY m.received_at DESC, m.id DESC LIMIT 51"
explain "state held" "SELECT m.id FROM spool.messages AS m WHERE EXISTS (SELECT 1 FROM spool.recipients AS r WHERE r.message_id = m.id AND r.state = ANY('{7}')) ORDER BY m.received_at DESC, m.id DESC LIMIT 51"
# The queue summary as the store runs it since migration 0020: the pending index in order, serial, two of its ten buckets shown.
explain "queue summary" "SELECT r.domain, r.state, count(*) FILTER (WHERE r.received_at > now() - interval '5 minutes'), count(*) FILTER (WHERE r.received_at <= now() - interval '5 minutes'), min(r.received_at) FROM spool.recipients AS r WHERE r.state IN (0, 1, 2, 7) GROUP BY r.domain, r.state"
