using MailMesh.Storage.Content;
using Npgsql;
using NpgsqlTypes;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// The spool in PostgreSQL (schema <c>spool</c>), for any number of Queue and Ingress replicas. Every operation is
/// one round trip: a single statement, or an <see cref="NpgsqlBatch"/> that the server runs as one implicit
/// transaction. Statement texts are constant so Npgsql's automatic preparation can reuse them. The three writes of
/// every mail, its store (Ingress), its lease take and its result record (Delivery), each go through a
/// <see cref="StatementCoalescer{TRequest, TKey, TResult}"/>: those that arrive together go as one batch of their
/// statements, one round trip and one transaction, so one commit and one WAL flush for all of them.
/// </summary>
public sealed class PostgresSpool : ISpool
{
    /// <summary>The most lease takes (each may carry up to 256 KiB of content inline) or result records in one transaction.</summary>
    internal const int MaxTakesPerStatement = 32;

    internal const int MaxRecordsPerStatement = 64;

    /// <summary>
    /// Messages in memory up to this size are stored together with those that arrive at the same time (the accept
    /// path's group commit), up to <see cref="MaxStoresPerStatement"/> in one transaction and
    /// <see cref="StoreStatementsAtOnce"/> such transactions at the server; a larger one, or one in a file, goes alone.
    /// </summary>
    internal const int MaxCoalescedContent = 256 * 1024;

    internal const int MaxStoresPerStatement = 32;

    internal const int StoreStatementsAtOnce = 2;

    private readonly NpgsqlDataSource _dataSource;
    private readonly StatementCoalescer<TakeRequest, Guid, TakeAnswer> _takes;
    private readonly StatementCoalescer<RecordRequest, Guid, bool> _records;
    private readonly StatementCoalescer<StoreRequest, Guid, bool> _stores;

    public PostgresSpool(NpgsqlDataSource dataSource)
    {
        _dataSource = dataSource;
        _takes = new(StartAttemptsAsync, static r => r.LeaseId, MaxTakesPerStatement);
        _records = new(RecordResultsAsync, static r => r.Result.LeaseId, MaxRecordsPerStatement);
        _stores = new(StoreAllAsync, static r => r.Message.Id, MaxStoresPerStatement, StoreStatementsAtOnce);
    }

    /// <summary>Statements that took leases and recorded results so far (tests read them).</summary>
    internal (int Takes, int Records, int Stores) CoalescedStatements => (_takes.Statements, _records.Statements, _stores.Statements);

    private sealed record TakeRequest(Guid MessageId, Guid LeaseId, Guid OwnerId, DateTimeOffset LeaseExpiresAt);

    private sealed record RecordRequest(PendingResult Result, DateTimeOffset Now);

    private sealed record StoreRequest(NewMessage Message, string[] Domains);

    /// <summary>A take's answer: the message if the lease was taken, or the error reading its row (the take committed).</summary>
    private sealed record TakeAnswer(StoredMessage? Message, Exception? Error);

    private const string StoreSql =
        """
        WITH message AS (
            INSERT INTO spool.messages (id, sender, content, size, received_at, origin, client_address, client_helo,
                auth_user, body_type, smtputf8, requiretls, envid, ret, trace_parent, completed_at, pool)
            VALUES (@id, @sender, @content_prefix || @content, @size, @received_at, @origin, @client_address, @client_helo,
                @auth_user, @body_type, @smtputf8, @requiretls, @envid, @ret, @trace_parent, @completed_at, @pool)
            ON CONFLICT (id) DO NOTHING
            RETURNING id
        ), recipients AS (
            INSERT INTO spool.recipients (message_id, address, domain, state, next_attempt_at, notify, orcpt, updated_at, received_at)
            SELECT message.id, r.address, r.domain, r.state, @next_attempt_at, r.notify, r.orcpt, @received_at, @received_at
            FROM message,
                unnest(@addresses, @domains, @states, @notifies, @orcpts)
                    WITH ORDINALITY AS r(address, domain, state, notify, orcpt, ordinal)
            ORDER BY r.ordinal
        )
        SELECT count(*) FROM message
        """;

    /// <summary><see cref="StoreSql"/> sent with positional parameters: the accept path's statement, once per message.</summary>
    private static readonly PositionalStatement Store = new(StoreSql);

    /// <summary>Delivery's per-mail statements (a lease taken, a result recorded), sent with positional parameters.</summary>
    private static readonly PositionalStatement StartAttempt = new(StartAttemptSql), RecordResult = new(RecordResultSql);

    private const string GetMessageSql =
        """
        SELECT sender, content, received_at, origin, client_address, client_helo, auth_user, body_type, smtputf8,
            requiretls, envid, ret, trace_parent, pool
        FROM spool.messages
        WHERE id = @id
        """;

    // Due work is an index-ordered scan (recipients_due) that stops at LIMIT; leases, live and expired, are read once
    // through recipients_in_flight (every in-flight recipient: the window's worth), which no lease change touches, so
    // taking, renewing and recording a lease are HOT updates (schema 25). Candidates are read without locks and only the
    // rows picked are locked: locking every candidate wrote a row lock, and a WAL record, into each backlog row the scan
    // passed while a domain's window had room for a few jobs, round after round (in a paced distributed run that fell
    // behind, the claims wrote 570,000 WAL records for 12,000 mails, more than the mails themselves; issue 8). A picked
    // row another claimer holds is skipped (SKIP LOCKED), and one another claimer changed since the statement's snapshot
    // is re-checked against the lock's WHERE clause (still due, or its lease still expired) on its newest version before
    // it is locked, so no recipient is ever claimed twice; a claimer that loses every row to another claims nothing this
    // round. The window: live leases (lease_expires_at > now; a recorded result has none) are counted per domain, and
    // candidate jobs are admitted in due order while their domain and the total stay inside it. The count is read from
    // the statement's snapshot, so two replicas claiming at the same instant can overshoot the window by one round at most.
    internal const string ClaimSql =
        """
        WITH leased AS MATERIALIZED (
            SELECT id, message_id, domain, lease_id, lease_expires_at
            FROM spool.recipients
            WHERE state = 1 AND lease_expires_at IS NOT NULL
        ), inflight AS (
            SELECT domain, count(DISTINCT lease_id) AS jobs
            FROM leased
            WHERE lease_expires_at > @now
            GROUP BY domain
        ), room AS (
            SELECT greatest(0, @max_jobs - coalesce((SELECT sum(jobs) FROM inflight), 0))::bigint AS jobs
        ), full_domains AS (
            SELECT domain FROM inflight WHERE jobs >= @max_domain_jobs
        ), due AS (
            -- Nothing is scanned when the window has no room. Rows of a domain whose own window is full are not taken,
            -- but the scan still reads them and filters them out, so that cost grows with the domain's backlog
            -- (docs/performance.md, session 19).
            SELECT id, message_id, domain, next_attempt_at AS due_at
            FROM spool.recipients
            WHERE state IN (0, 2) AND next_attempt_at <= @now
                AND domain NOT IN (SELECT domain FROM full_domains)
            ORDER BY next_attempt_at
            LIMIT (SELECT CASE WHEN jobs > 0 THEN @scan ELSE 0 END FROM room)
        ), expired AS (
            SELECT id, message_id, domain, lease_expires_at AS due_at
            FROM leased
            WHERE lease_expires_at <= @now
            ORDER BY lease_expires_at
            LIMIT @scan
        ), candidates AS (
            SELECT * FROM due UNION ALL SELECT * FROM expired
        ), jobs AS (
            SELECT message_id, domain, min(due_at) AS due_at, min(id) AS first_id, array_agg(id) AS ids
            FROM candidates
            GROUP BY message_id, domain
        ), ranked AS (
            SELECT j.*, row_number() OVER (PARTITION BY j.domain ORDER BY j.due_at, j.first_id) AS domain_rank
            FROM jobs AS j
        ), admitted AS (
            SELECT r.due_at, r.first_id, r.ids
            FROM ranked AS r
                LEFT JOIN inflight AS i ON i.domain = r.domain
            WHERE r.domain_rank + coalesce(i.jobs, 0) <= @max_domain_jobs
            ORDER BY r.due_at, r.first_id
            LIMIT (SELECT jobs FROM room)
        ), picked AS (
            -- Each admitted job carries its candidates' ids: no join back to the candidates.
            SELECT x.id
            FROM admitted AS a, unnest(a.ids) AS x(id)
            ORDER BY a.due_at, a.first_id, x.id
            LIMIT @limit
        ), locked AS (
            SELECT r.id, r.message_id, r.domain
            FROM spool.recipients AS r
            WHERE r.id = ANY(ARRAY(SELECT id FROM picked))
                AND ((r.state IN (0, 2) AND r.next_attempt_at <= @now) OR (r.state = 1 AND r.lease_expires_at <= @now))
            FOR UPDATE SKIP LOCKED
        ), leases AS (
            SELECT message_id, domain, gen_random_uuid() AS lease_id
            FROM locked
            GROUP BY message_id, domain
        )
        UPDATE spool.recipients AS r
        SET state = 1, attempts = r.attempts + 1, lease_id = l.lease_id, lease_expires_at = @lease_expires_at,
            lease_owner = NULL, updated_at = @now
        FROM locked AS p
            JOIN leases AS l ON l.message_id = p.message_id AND l.domain = p.domain
            JOIN spool.messages AS m ON m.id = p.message_id
        WHERE r.id = p.id
        RETURNING r.id, r.message_id, r.domain, r.address, r.attempts, r.notify, r.orcpt, r.lease_id, m.received_at,
            m.trace_parent, r.next_attempt_at, m.pool
        """;

    // Takes the lease for one attempt and reads the message in one statement: nothing is returned unless the lease is
    // still this one, unowned or already ours, and its result not yet recorded (lease_expires_at not null). The takes
    // that arrive together go as one batch of these, one transaction (StatementCoalescer).
    internal const string StartAttemptSql =
        """
        WITH taken AS (
            UPDATE spool.recipients
            SET lease_owner = @owner, lease_expires_at = greatest(lease_expires_at, @lease_expires_at)
            WHERE message_id = @message_id AND lease_id = @lease_id AND state = 1 AND lease_expires_at IS NOT NULL
                AND (lease_owner IS NULL OR lease_owner = @owner)
            RETURNING id
        )
        SELECT sender, CASE WHEN size <= @inline_limit THEN content END, received_at, origin, client_address, client_helo,
            auth_user, body_type, smtputf8, requiretls, envid, ret, trace_parent, pool, size
        FROM spool.messages
        WHERE id = @message_id AND EXISTS (SELECT 1 FROM taken)
        """;

    private const string GetContentSql = "SELECT content FROM spool.messages WHERE id = @id";

    private const string RenewLeaseSql =
        """
        UPDATE spool.recipients
        SET lease_expires_at = greatest(lease_expires_at, @lease_expires_at)
        WHERE message_id = @message_id AND lease_id = @lease_id AND state = 1 AND lease_expires_at IS NOT NULL
            AND lease_owner = @owner
        """;

    // Records one attempt's result: the recipients it names stop being a live lease (lease_expires_at null) while still
    // in flight under its lease, and the result goes to the outbox if any did. The records that arrive together go as
    // one batch of these, one transaction (StatementCoalescer): one statement per result keeps each on its own index
    // path (one statement for all, joined to an unnest of every recipient named, was planned as a scan of all in-flight
    // recipients against every name, growing with the square of the batch).
    internal const string RecordResultSql =
        """
        WITH pending AS (
            UPDATE spool.recipients
            SET lease_expires_at = NULL
            WHERE message_id = @message_id AND lease_id = @lease_id AND state = 1 AND id = ANY(@ids)
            RETURNING id
        ), recorded AS (
            INSERT INTO spool.results (lease_id, message_id, payload, trace_parent, created_at, next_try_at)
            SELECT @lease_id, @message_id, @payload, @trace_parent, @now, @now
            WHERE EXISTS (SELECT 1 FROM pending)
            ON CONFLICT (lease_id) DO NOTHING
        )
        SELECT count(*) FROM pending
        """;

    internal const string ClaimResultsSql =
        """
        UPDATE spool.results AS r
        SET tries = r.tries + 1, next_try_at = @now + @retry_after * power(2, least(r.tries, 5))
        FROM (
            SELECT lease_id FROM spool.results
            WHERE next_try_at <= @now
            ORDER BY next_try_at
            LIMIT @limit
            FOR UPDATE SKIP LOCKED) AS d
        WHERE r.lease_id = d.lease_id
        RETURNING r.lease_id, r.message_id, r.payload, r.tries, r.trace_parent
        """;

    private const string DeleteResultsSql = "DELETE FROM spool.results WHERE lease_id = ANY(@ids)";

    // The lease clock. The common case is one statement: the previous heartbeat is recent (or there is none yet), so
    // only the heartbeat moves. Otherwise BeatLeaseClockAsync takes the row's lock and extends the live leases.
    private const string BeatSql =
        """
        UPDATE spool.lease_clock
        SET beat_at = greatest(beat_at, @now)
        WHERE id = 1 AND (beat_at IS NULL OR beat_at >= @now - @max_gap)
        """;

    private const string LockClockSql = "SELECT beat_at FROM spool.lease_clock WHERE id = 1 FOR UPDATE";

    // Leases live at the previous heartbeat; a recorded result (no expiry) is not a lease any more.
    private const string ExtendLeasesSql =
        """
        UPDATE spool.recipients
        SET lease_expires_at = lease_expires_at + @gap
        WHERE state = 1 AND lease_expires_at > @from
        """;

    private const string MoveClockSql = "UPDATE spool.lease_clock SET beat_at = greatest(beat_at, @now) WHERE id = 1";

    // Serialises completions of one message (one job per domain may finish at the same moment) so the "all recipients
    // final" check below always sees the other job's committed updates. Locked in id order: two batches that share
    // messages wait for each other instead of deadlocking.
    private const string LockMessagesSql = "SELECT 1 FROM spool.messages WHERE id = ANY(@message_ids) ORDER BY id FOR NO KEY UPDATE";

    // One row per update, each with its attempt's message and lease: applied only while the recipient is in flight
    // under that lease.
    private const string ApplyUpdatesSql =
        """
        WITH updates AS (
            SELECT *
            FROM unnest(@update_message_ids, @lease_ids, @ids, @states, @next_attempt_at, @attempted_at, @reply_codes,
                @enhanced_codes, @reply_texts, @remote_hosts, @bounce_classes, @not_attempted, @tls_protocols, @tls_ciphers,
                @tls_verifications)
                AS u(message_id, lease_id, id, state, next_attempt_at, attempted_at, reply_code, enhanced_code, reply_text,
                    remote_host, bounce_class, not_attempted, tls_protocol, tls_cipher, tls_verification)
        ), applied AS (
            UPDATE spool.recipients AS r
            SET state = u.state, next_attempt_at = u.next_attempt_at, lease_id = NULL, lease_expires_at = NULL,
                attempts = CASE WHEN u.not_attempted THEN GREATEST(r.attempts - 1, 0) ELSE r.attempts END,
                lease_owner = NULL, last_reply_code = u.reply_code, last_enhanced_code = u.enhanced_code, last_reply_text = u.reply_text,
                last_remote_host = u.remote_host, updated_at = u.attempted_at, last_bounce_class = u.bounce_class
            FROM updates AS u
            WHERE r.id = u.id AND r.message_id = u.message_id AND r.state = 1 AND r.lease_id = u.lease_id
            RETURNING r.id, u.lease_id, u.state, u.attempted_at, u.reply_code, u.enhanced_code, u.reply_text, u.remote_host,
                u.bounce_class, u.not_attempted, u.tls_protocol, u.tls_cipher, u.tls_verification
        ), history AS (
            INSERT INTO spool.attempts (recipient_id, attempted_at, reply_code, enhanced_code, reply_text, remote_host, state, bounce_class,
                tls_protocol, tls_cipher, tls_verification)
            SELECT id, attempted_at, reply_code, enhanced_code, reply_text, remote_host, state, bounce_class,
                tls_protocol, tls_cipher, tls_verification
            FROM applied
            WHERE NOT not_attempted
        )
        SELECT id, lease_id FROM applied
        """;

    // A separate statement after the updates, so it sees them. Each message's recipients are read through
    // recipients_message_id alone: the state test is the aggregate's FILTER, not a WHERE term, so no partial index on
    // state can be combined in. With "WHERE message_id = ... AND state IN (0, 1, 2)" the planner ANDed in a bitmap of
    // the whole recipients_pending index (it implies that index's predicate, and statistics taken on a quiet spool say
    // it is small), read once per message: 25,000 entries, most of them dead, for each of 80 messages, 78 ms per
    // batch, more executor time than the claims in a paced distributed run (issue 8, session 20).
    internal const string CompleteMessagesSql =
        """
        UPDATE spool.messages AS m
        SET completed_at = c.completed_at
        FROM unnest(@message_ids, @completed_at) AS c(id, completed_at)
        WHERE m.id = c.id AND m.completed_at IS NULL
            AND (SELECT count(*) FILTER (WHERE r.state IN (0, 1, 2)) FROM spool.recipients AS r WHERE r.message_id = c.id) = 0
        """;

    private const string StatusesMessagesSql =
        "SELECT id, sender, received_at, size, origin, completed_at FROM spool.messages WHERE id = ANY(@ids)";

    private const string StatusesRecipientsSql =
        """
        SELECT message_id, id, address, domain, state, attempts, next_attempt_at, last_reply_code, last_enhanced_code,
            last_reply_text, last_remote_host, updated_at, notify, orcpt, last_bounce_class
        FROM spool.recipients
        WHERE message_id = ANY(@ids)
        ORDER BY message_id, id
        """;

    private const string StatusMessageSql =
        "SELECT sender, received_at, size, origin, completed_at FROM spool.messages WHERE id = @id";

    private const string StatusRecipientsSql =
        """
        SELECT id, address, domain, state, attempts, next_attempt_at, last_reply_code, last_enhanced_code,
            last_reply_text, last_remote_host, updated_at, notify, orcpt, last_bounce_class
        FROM spool.recipients
        WHERE message_id = @id
        ORDER BY id
        """;

    private const string StatusAttemptsSql =
        """
        SELECT a.recipient_id, a.attempted_at, a.state, a.reply_code, a.enhanced_code, a.reply_text, a.remote_host, a.bounce_class,
            a.tls_protocol, a.tls_cipher, a.tls_verification
        FROM spool.attempts AS a
            JOIN spool.recipients AS r ON r.id = a.recipient_id
        WHERE r.message_id = @id
        ORDER BY a.recipient_id, a.attempted_at, a.id
        """;

    private const string CountSql = "SELECT state, count(*) FROM spool.recipients GROUP BY state";

    private const int PurgeBatchSize = 1000;

    private const string PurgeSql =
        """
        DELETE FROM spool.messages
        WHERE id IN (
            SELECT id FROM spool.messages
            WHERE completed_at < @older_than
            ORDER BY completed_at
            LIMIT @limit)
        """;

    public async Task<bool> StoreAsync(NewMessage message, CancellationToken cancellationToken)
    {
        StoreArguments.CheckNewMessage(message);

        // Each recipient's domain before the message is queued: an address that has none fails this store alone.
        string[] domains = [.. message.Recipients.Select(r => StoreArguments.DomainOf(r.Address))];
        if (message.ContentSource is null && message.Content.Length <= MaxCoalescedContent)
        {
            return await _stores.RunAsync(new StoreRequest(message, domains), cancellationToken);
        }

        // A body in a file goes to the server as a memory map of it (a ReadOnlyMemory parameter, which Npgsql writes in
        // pieces): Npgsql copies a Stream parameter into a MemoryStream first, which held a 35 MB message on the heap
        // several times over and ran a distributed Ingress out of memory under the chart's limit (issue 7 §3). A source
        // that cannot be mapped still goes as a stream. Both are disposed after the command. Such a message, or a large
        // one in memory, goes alone: it would hold back the small ones behind it.
        using var mapped = message.ContentSource?.Map?.Invoke();
        await using var contentStream = mapped is null ? message.ContentSource?.Open() : null;
        await using var batch = _dataSource.CreateBatch();
        batch.BatchCommands.Add(StoreCommand(message, domains, mapped, contentStream));
        return (await CountsAsync(batch, cancellationToken))[0] == 1;
    }

    /// <summary>
    /// Messages in memory stored together: one command each in one batch, which the server runs as one implicit
    /// transaction, so one commit (and one WAL flush) for all of them. Each command answers whether its message was new.
    /// </summary>
    private async Task<IReadOnlyList<bool>> StoreAllAsync(IReadOnlyList<StoreRequest> requests, CancellationToken cancellationToken)
    {
        await using var batch = _dataSource.CreateBatch();
        foreach (var (message, domains) in requests)
        {
            batch.BatchCommands.Add(StoreCommand(message, domains, mapped: null, contentStream: null));
        }

        return [.. (await CountsAsync(batch, cancellationToken)).Select(count => count == 1)];
    }

    /// <summary>Runs a batch whose every command answers one row of one count; the counts in command order.</summary>
    private static async Task<long[]> CountsAsync(NpgsqlBatch batch, CancellationToken cancellationToken)
    {
        var counts = new long[batch.BatchCommands.Count];
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        for (var i = 0; i < counts.Length; i++)
        {
            if (i > 0)
            {
                await reader.NextResultAsync(cancellationToken);
            }

            await reader.ReadAsync(cancellationToken);
            counts[i] = reader.GetInt64(0);
        }

        return counts;
    }

    /// <summary>The insert of one message and its recipients, its content in memory, mapped, or a stream.</summary>
    private static NpgsqlBatchCommand StoreCommand(NewMessage message, string[] domains, MappedContent? mapped, Stream? contentStream)
    {
        var count = message.Recipients.Count;
        var addresses = new string[count];
        var states = new short[count];
        var notifies = new string?[count];
        var orcpts = new string?[count];
        var allFinal = true;
        for (var i = 0; i < count; i++)
        {
            var recipient = message.Recipients[i];
            addresses[i] = recipient.Address;
            states[i] = (short)recipient.State;
            notifies[i] = recipient.Notify;
            orcpts[i] = recipient.OriginalRecipient;
            allFinal &= recipient.State.IsFinal();
        }

        var receivedAt = StoreArguments.Truncate(message.ReceivedAt);
        return Store.Command(
            new NpgsqlParameter<Guid>("id", message.Id),
            new NpgsqlParameter<string>("sender", message.Sender),
            new NpgsqlParameter<ReadOnlyMemory<byte>>("content_prefix", NpgsqlDbType.Bytea)
            {
                TypedValue = mapped is null ? ReadOnlyMemory<byte>.Empty : message.ContentSource!.MappedPrefix,
            },
            contentStream is null
                ? new NpgsqlParameter<ReadOnlyMemory<byte>>("content", NpgsqlDbType.Bytea) { TypedValue = mapped?.Memory ?? message.Content }
                : new NpgsqlParameter<Stream>("content", NpgsqlDbType.Bytea) { TypedValue = contentStream, Size = checked((int)message.ContentLength) },
            new NpgsqlParameter<long>("size", message.ContentLength),
            new NpgsqlParameter<DateTimeOffset>("received_at", receivedAt),
            new NpgsqlParameter<short>("origin", (short)message.Origin),
            Text("client_address", message.ClientAddress),
            Text("client_helo", message.ClientHelo),
            Text("auth_user", message.AuthenticatedUser),
            new NpgsqlParameter<short>("body_type", (short)message.BodyType),
            new NpgsqlParameter<bool>("smtputf8", message.SmtpUtf8),
            new NpgsqlParameter<bool>("requiretls", message.RequireTls),
            Text("envid", message.EnvelopeId),
            Text("ret", message.Ret),
            Text("trace_parent", message.TraceParent),
            Timestamp("completed_at", allFinal ? receivedAt : null),
            Text("pool", message.Pool),
            new NpgsqlParameter<DateTimeOffset>("next_attempt_at", StoreArguments.Truncate(message.NotBefore ?? receivedAt)),
            new NpgsqlParameter<string[]>("addresses", addresses),
            new NpgsqlParameter<string[]>("domains", domains),
            new NpgsqlParameter<short[]>("states", states),
            new NpgsqlParameter<string?[]>("notifies", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = notifies },
            new NpgsqlParameter<string?[]>("orcpts", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = orcpts });
    }

    public async Task<StoredMessage?> GetMessageAsync(Guid messageId, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(GetMessageSql);
        command.Parameters.Add(new NpgsqlParameter<Guid>("id", messageId));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return ReadMessage(reader, 0, messageId, reader.GetFieldValue<byte[]>(1));
    }

    public Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(DateTimeOffset now, int maxRecipients, TimeSpan leaseDuration, CancellationToken cancellationToken) =>
        ClaimDueAsync(new ClaimRequest { Now = now, MaxRecipients = maxRecipients, LeaseDuration = leaseDuration }, cancellationToken);

    public async Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(ClaimRequest request, CancellationToken cancellationToken)
    {
        var (now, expires, maxRecipients, scan, maxJobs, maxDomainJobs) = StoreArguments.CheckClaim(request);

        // Plain index scans only (IndexScansOnly): of the due and in-flight indexes, and of the primary key for the rows
        // it locks.
        await using var claim = await IndexScansOnly.BeginAsync(_dataSource, ClaimSql, cancellationToken);
        var command = claim.Command;
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
        command.Parameters.Add(new NpgsqlParameter<int>("limit", maxRecipients));
        command.Parameters.Add(new NpgsqlParameter<int>("scan", scan));
        command.Parameters.Add(new NpgsqlParameter<long>("max_jobs", maxJobs));
        command.Parameters.Add(new NpgsqlParameter<long>("max_domain_jobs", maxDomainJobs));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("lease_expires_at", expires));

        // Grown as rows arrive: a claim usually returns a few rows, and a capacity of maxRecipients up front was a ~100 KB
        // array (the large object heap) on every poll, 15 % of Queue's allocations under load (issue 8).
        var claimed = new List<ClaimedRow>();
        await using (var reader = await claim.Batch.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                claimed.Add(new ClaimedRow(
                    MessageId: reader.GetGuid(1),
                    Domain: reader.GetString(2),
                    LeaseId: reader.GetGuid(7),
                    ReceivedAt: reader.GetFieldValue<DateTimeOffset>(8),
                    TraceParent: NullableString(reader, 9),
                    DueAt: reader.GetFieldValue<DateTimeOffset>(10),
                    Recipient: new ClaimedRecipient
                    {
                        RecipientId = reader.GetInt64(0),
                        Address = reader.GetString(3),
                        Attempt = reader.GetInt32(4),
                        Notify = NullableString(reader, 5),
                        OriginalRecipient = NullableString(reader, 6),
                    })
                { Pool = NullableString(reader, 11) });
            }
        }

        await claim.CommitAsync(cancellationToken);
        return ClaimedRow.ToJobs(claimed, expires);
    }

    public async Task<IReadOnlyList<RecipientUpdate>> CompleteAttemptAsync(Guid messageId, Guid leaseId, IReadOnlyList<RecipientUpdate> updates, CancellationToken cancellationToken) =>
        (await CompleteAttemptsAsync([new AttemptCompletion { MessageId = messageId, LeaseId = leaseId, Updates = updates }], cancellationToken))[0];

    public async Task<IReadOnlyList<IReadOnlyList<RecipientUpdate>>> CompleteAttemptsAsync(IReadOnlyList<AttemptCompletion> attempts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(attempts);
        foreach (var attempt in attempts)
        {
            ArgumentNullException.ThrowIfNull(attempt);
            StoreArguments.CheckUpdates(attempt.Updates);
        }

        var count = attempts.Sum(a => a.Updates.Count);
        if (count == 0)
        {
            return [.. attempts.Select(_ => (IReadOnlyList<RecipientUpdate>)[])];
        }

        var updateMessageIds = new Guid[count];
        var leaseIds = new Guid[count];
        var ids = new long[count];
        var states = new short[count];
        var nextAttemptAt = new DateTimeOffset[count];
        var attemptedAt = new DateTimeOffset[count];
        var replyCodes = new short?[count];
        var enhancedCodes = new string?[count];
        var replyTexts = new string?[count];
        var remoteHosts = new string?[count];
        var bounceClasses = new string?[count];
        var notAttempted = new bool[count];
        var tlsProtocols = new string?[count];
        var tlsCiphers = new string?[count];
        var tlsVerifications = new string?[count];
        var completedAt = new Dictionary<Guid, DateTimeOffset>();
        var i = 0;
        foreach (var attempt in attempts)
        {
            foreach (var update in attempt.Updates)
            {
                updateMessageIds[i] = attempt.MessageId;
                leaseIds[i] = attempt.LeaseId;
                ids[i] = update.RecipientId;
                states[i] = (short)update.State;
                nextAttemptAt[i] = StoreArguments.Truncate(StoreArguments.NextAttemptAt(update));
                attemptedAt[i] = StoreArguments.Truncate(update.AttemptedAt);
                replyCodes[i] = (short?)update.ReplyCode;
                enhancedCodes[i] = update.EnhancedCode;
                replyTexts[i] = update.ReplyText;
                remoteHosts[i] = update.RemoteHost;
                bounceClasses[i] = update.BounceClass;
                notAttempted[i] = update.NotAttempted;
                tlsProtocols[i] = update.TlsProtocol;
                tlsCiphers[i] = update.TlsCipher;
                tlsVerifications[i] = update.TlsVerification;
                if (!completedAt.TryGetValue(attempt.MessageId, out var latest) || attemptedAt[i] > latest)
                {
                    completedAt[attempt.MessageId] = attemptedAt[i];
                }

                i++;
            }
        }

        var messageIds = completedAt.Keys.Order().ToArray();
        await using var batch = _dataSource.CreateBatch();

        var lockMessages = new NpgsqlBatchCommand(LockMessagesSql);
        lockMessages.Parameters.Add(new NpgsqlParameter<Guid[]>("message_ids", messageIds));
        batch.BatchCommands.Add(lockMessages);

        var apply = new NpgsqlBatchCommand(ApplyUpdatesSql);
        var p = apply.Parameters;
        p.Add(new NpgsqlParameter<Guid[]>("update_message_ids", updateMessageIds));
        p.Add(new NpgsqlParameter<Guid[]>("lease_ids", leaseIds));
        p.Add(new NpgsqlParameter<long[]>("ids", ids));
        p.Add(new NpgsqlParameter<short[]>("states", states));
        p.Add(new NpgsqlParameter<DateTimeOffset[]>("next_attempt_at", nextAttemptAt));
        p.Add(new NpgsqlParameter<DateTimeOffset[]>("attempted_at", attemptedAt));
        p.Add(new NpgsqlParameter<short?[]>("reply_codes", NpgsqlDbType.Array | NpgsqlDbType.Smallint) { TypedValue = replyCodes });
        p.Add(new NpgsqlParameter<string?[]>("enhanced_codes", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = enhancedCodes });
        p.Add(new NpgsqlParameter<string?[]>("reply_texts", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = replyTexts });
        p.Add(new NpgsqlParameter<string?[]>("remote_hosts", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = remoteHosts });
        p.Add(new NpgsqlParameter<string?[]>("bounce_classes", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = bounceClasses });
        p.Add(new NpgsqlParameter<bool[]>("not_attempted", notAttempted));
        p.Add(new NpgsqlParameter<string?[]>("tls_protocols", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = tlsProtocols });
        p.Add(new NpgsqlParameter<string?[]>("tls_ciphers", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = tlsCiphers });
        p.Add(new NpgsqlParameter<string?[]>("tls_verifications", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = tlsVerifications });
        batch.BatchCommands.Add(apply);

        var complete = new NpgsqlBatchCommand(CompleteMessagesSql);
        complete.Parameters.Add(new NpgsqlParameter<Guid[]>("message_ids", messageIds));
        complete.Parameters.Add(new NpgsqlParameter<DateTimeOffset[]>("completed_at", [.. messageIds.Select(id => completedAt[id])]));
        batch.BatchCommands.Add(complete);

        var applied = new HashSet<(long RecipientId, Guid LeaseId)>();
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken))
        {
            await reader.NextResultAsync(cancellationToken); // message locks
            while (await reader.ReadAsync(cancellationToken))
            {
                applied.Add((reader.GetInt64(0), reader.GetGuid(1)));
            }
        }

        return [.. attempts.Select(a => (IReadOnlyList<RecipientUpdate>)[.. a.Updates.Where(u => applied.Contains((u.RecipientId, a.LeaseId)))])];
    }

    public async Task<IReadOnlyDictionary<Guid, MessageStatus>> GetStatusesAsync(IReadOnlyCollection<Guid> messageIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(messageIds);
        var statuses = new Dictionary<Guid, MessageStatus>();
        if (messageIds.Count == 0)
        {
            return statuses;
        }

        var ids = messageIds.Distinct().ToArray();
        await using var batch = _dataSource.CreateBatch();
        foreach (var sql in (ReadOnlySpan<string>)[StatusesMessagesSql, StatusesRecipientsSql])
        {
            var command = new NpgsqlBatchCommand(sql);
            command.Parameters.Add(new NpgsqlParameter<Guid[]>("ids", ids));
            batch.BatchCommands.Add(command);
        }

        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        var messages = new Dictionary<Guid, MessageStatus>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var id = reader.GetGuid(0);
            messages[id] = new MessageStatus
            {
                Id = id,
                Sender = reader.GetString(1),
                ReceivedAt = reader.GetFieldValue<DateTimeOffset>(2),
                Size = reader.GetInt64(3),
                Origin = (MessageOrigin)reader.GetInt16(4),
                CompletedAt = reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5),
                Recipients = [],
            };
        }

        await reader.NextResultAsync(cancellationToken);
        var recipients = new Dictionary<Guid, List<RecipientStatus>>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var messageId = reader.GetGuid(0);
            if (!recipients.TryGetValue(messageId, out var list))
            {
                recipients[messageId] = list = [];
            }

            list.Add(ReadRecipientStatus(reader, 1));
        }

        foreach (var (id, message) in messages)
        {
            statuses[id] = message with { Recipients = recipients.TryGetValue(id, out var list) ? list : [] };
        }

        return statuses;
    }

    public async Task<MessageStatus?> GetStatusAsync(Guid messageId, CancellationToken cancellationToken)
    {
        await using var batch = _dataSource.CreateBatch();
        foreach (var sql in (ReadOnlySpan<string>)[StatusMessageSql, StatusRecipientsSql, StatusAttemptsSql])
        {
            var command = new NpgsqlBatchCommand(sql);
            command.Parameters.Add(new NpgsqlParameter<Guid>("id", messageId));
            batch.BatchCommands.Add(command);
        }

        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        var sender = reader.GetString(0);
        var receivedAt = reader.GetFieldValue<DateTimeOffset>(1);
        var size = reader.GetInt64(2);
        var origin = (MessageOrigin)reader.GetInt16(3);
        DateTimeOffset? completedAt = reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4);

        await reader.NextResultAsync(cancellationToken);
        var recipients = new List<RecipientStatus>();
        while (await reader.ReadAsync(cancellationToken))
        {
            recipients.Add(ReadRecipientStatus(reader, 0));
        }

        await reader.NextResultAsync(cancellationToken);
        var history = new Dictionary<long, List<AttemptRecord>>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var recipientId = reader.GetInt64(0);
            if (!history.TryGetValue(recipientId, out var list))
            {
                history[recipientId] = list = [];
            }

            list.Add(new AttemptRecord
            {
                AttemptedAt = reader.GetFieldValue<DateTimeOffset>(1),
                State = (RecipientState)reader.GetInt16(2),
                ReplyCode = reader.IsDBNull(3) ? null : reader.GetInt16(3),
                EnhancedCode = NullableString(reader, 4),
                ReplyText = NullableString(reader, 5),
                RemoteHost = NullableString(reader, 6),
                BounceClass = NullableString(reader, 7),
                TlsProtocol = NullableString(reader, 8),
                TlsCipher = NullableString(reader, 9),
                TlsVerification = NullableString(reader, 10),
            });
        }

        return new MessageStatus
        {
            Id = messageId,
            Sender = sender,
            ReceivedAt = receivedAt,
            Size = size,
            Origin = origin,
            CompletedAt = completedAt,
            Recipients = recipients.ConvertAll(r => history.TryGetValue(r.RecipientId, out var h) ? r with { History = h } : r),
        };
    }

    public async Task<StoredMessage?> StartAttemptAsync(Guid messageId, Guid leaseId, Guid ownerId, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken)
    {
        var answer = await _takes.RunAsync(new TakeRequest(messageId, leaseId, ownerId, StoreArguments.Truncate(leaseExpiresAt)), cancellationToken);
        if (answer.Error is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(answer.Error);
        }

        return answer.Message;
    }

    private async Task<IReadOnlyList<TakeAnswer>> StartAttemptsAsync(IReadOnlyList<TakeRequest> requests, CancellationToken cancellationToken)
    {
        // Durable like the claim: a take lost in a crash could let a redelivered work item take the lease a second time.
        // In message and lease order, so two transactions that take some of the same leases lock their rows in one order.
        var ordered = Enumerable.Range(0, requests.Count)
            .OrderBy(i => requests[i].MessageId).ThenBy(i => requests[i].LeaseId)
            .ToList();
        await using var batch = _dataSource.CreateBatch();
        foreach (var i in ordered)
        {
            batch.BatchCommands.Add(StartAttempt.Command(
                new NpgsqlParameter<Guid>("message_id", requests[i].MessageId),
                new NpgsqlParameter<Guid>("lease_id", requests[i].LeaseId),
                new NpgsqlParameter<Guid>("owner", requests[i].OwnerId),
                new NpgsqlParameter<DateTimeOffset>("lease_expires_at", requests[i].LeaseExpiresAt),
                new NpgsqlParameter<long>("inline_limit", StoredMessage.InlineContentLimit)));
        }

        var taken = new TakeAnswer[requests.Count];
        try
        {
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
            for (var n = 0; n < ordered.Count; n++)
            {
                if (n > 0)
                {
                    await reader.NextResultAsync(cancellationToken);
                }

                try
                {
                    taken[ordered[n]] = await reader.ReadAsync(cancellationToken)
                        ? new TakeAnswer(ReadTaken(reader, requests[ordered[n]].MessageId), null)
                        : new TakeAnswer(null, null);
                }
                catch (InvalidDataException ex)
                {
                    // This row alone: the batch (every take in it) commits whatever the client makes of its rows.
                    taken[ordered[n]] = new TakeAnswer(null, ex);
                }
            }
        }
        catch
        {
            foreach (var answer in taken)
            {
                answer?.Message?.ContentLease?.Dispose();
            }

            throw;
        }

        return taken;
    }

    /// <summary>A taken attempt's message from the current row of <see cref="StartAttemptSql"/>.</summary>
    private static StoredMessage ReadTaken(NpgsqlDataReader reader, Guid messageId)
    {
        var detached = reader.IsDBNull(1);
        var rented = detached ? null : RentedContent.Read(reader, 1);
        return ReadMessage(reader, 0, messageId, rented?.Memory ?? ReadOnlyMemory<byte>.Empty) with
        {
            ContentLease = rented,
            DetachedContentLength = detached ? reader.GetInt64(14) : null,
        };
    }

    /// <summary>
    /// A message from the current row, its columns from <paramref name="first"/> on in the order of
    /// <see cref="GetMessageSql"/>: sender, content (read by the caller), received_at, ..., trace_parent, pool.
    /// </summary>
    private static StoredMessage ReadMessage(NpgsqlDataReader reader, int first, Guid messageId, ReadOnlyMemory<byte> content) => new()
    {
        Id = messageId,
        Sender = reader.GetString(first),
        Content = content,
        ReceivedAt = reader.GetFieldValue<DateTimeOffset>(first + 2),
        Origin = (MessageOrigin)reader.GetInt16(first + 3),
        ClientAddress = NullableString(reader, first + 4),
        ClientHelo = NullableString(reader, first + 5),
        AuthenticatedUser = NullableString(reader, first + 6),
        BodyType = (BodyType)reader.GetInt16(first + 7),
        SmtpUtf8 = reader.GetBoolean(first + 8),
        RequireTls = reader.GetBoolean(first + 9),
        EnvelopeId = NullableString(reader, first + 10),
        Ret = NullableString(reader, first + 11),
        TraceParent = NullableString(reader, first + 12),
        Pool = NullableString(reader, first + 13),
    };

    public async Task<bool> CopyContentAsync(Guid messageId, Stream destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        await using var command = _dataSource.CreateCommand(GetContentSql);
        command.Parameters.Add(new NpgsqlParameter<Guid>("id", messageId));

        // Sequential access: the value streams off the wire into destination instead of being buffered whole.
        await using var reader = await command.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return false;
        }

        await using var content = await reader.GetStreamAsync(0, cancellationToken);
        await content.CopyToAsync(destination, cancellationToken);
        return true;
    }

    public async Task<bool> RenewLeaseAsync(Guid messageId, Guid leaseId, Guid ownerId, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(RenewLeaseSql);
        command.Parameters.Add(new NpgsqlParameter<Guid>("message_id", messageId));
        command.Parameters.Add(new NpgsqlParameter<Guid>("lease_id", leaseId));
        command.Parameters.Add(new NpgsqlParameter<Guid>("owner", ownerId));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("lease_expires_at", StoreArguments.Truncate(leaseExpiresAt)));
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    public Task<bool> RecordResultAsync(PendingResult result, DateTimeOffset now, CancellationToken cancellationToken)
    {
        StoreArguments.CheckResult(result);
        return _records.RunAsync(new RecordRequest(result, StoreArguments.Truncate(now)), cancellationToken);
    }

    private async Task<IReadOnlyList<bool>> RecordResultsAsync(IReadOnlyList<RecordRequest> requests, CancellationToken cancellationToken)
    {
        // In message and lease order, so two transactions that record some of the same leases lock their rows in one order.
        var ordered = Enumerable.Range(0, requests.Count)
            .OrderBy(i => requests[i].Result.MessageId).ThenBy(i => requests[i].Result.LeaseId)
            .ToList();
        await using var batch = _dataSource.CreateBatch();
        foreach (var i in ordered)
        {
            var (result, now) = requests[i];
            batch.BatchCommands.Add(RecordResult.Command(
                new NpgsqlParameter<Guid>("message_id", result.MessageId),
                new NpgsqlParameter<Guid>("lease_id", result.LeaseId),
                new NpgsqlParameter<long[]>("ids", [.. result.RecipientIds]),
                new NpgsqlParameter<string>("payload", result.Payload),
                Text("trace_parent", result.TraceParent),
                new NpgsqlParameter<DateTimeOffset>("now", now)));
        }

        var counts = await CountsAsync(batch, cancellationToken);
        var recorded = new bool[requests.Count];
        for (var n = 0; n < ordered.Count; n++)
        {
            recorded[ordered[n]] = counts[n] > 0;
        }

        return recorded;
    }

    public async Task<IReadOnlyList<PendingResult>> ClaimResultsAsync(DateTimeOffset now, int maxResults, TimeSpan retryAfter, CancellationToken cancellationToken)
    {
        StoreArguments.CheckClaimResults(maxResults, retryAfter);
        await using var claim = await IndexScansOnly.BeginAsync(_dataSource, ClaimResultsSql, cancellationToken);
        claim.Command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", StoreArguments.Truncate(now)));
        claim.Command.Parameters.Add(new NpgsqlParameter<int>("limit", maxResults));
        claim.Command.Parameters.Add(new NpgsqlParameter<TimeSpan>("retry_after", retryAfter));
        var results = new List<PendingResult>();
        await using (var reader = await claim.Batch.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                results.Add(new PendingResult
                {
                    LeaseId = reader.GetGuid(0),
                    MessageId = reader.GetGuid(1),
                    Payload = reader.GetString(2),
                    Tries = reader.GetInt32(3),
                    TraceParent = NullableString(reader, 4),
                });
            }
        }

        await claim.CommitAsync(cancellationToken);
        return results;
    }

    public async Task DeleteResultsAsync(IReadOnlyList<Guid> leaseIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leaseIds);
        if (leaseIds.Count == 0)
        {
            return;
        }

        await using var command = _dataSource.CreateCommand(DeleteResultsSql);
        command.Parameters.Add(new NpgsqlParameter<Guid[]>("ids", [.. leaseIds]));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<LeaseClockPause?> BeatLeaseClockAsync(DateTimeOffset now, TimeSpan maxGap, CancellationToken cancellationToken)
    {
        StoreArguments.CheckLeaseClock(maxGap);
        now = StoreArguments.Truncate(now);
        await using (var beat = _dataSource.CreateCommand(BeatSql))
        {
            beat.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
            beat.Parameters.Add(new NpgsqlParameter<TimeSpan>("max_gap", maxGap));
            if (await beat.ExecuteNonQueryAsync(cancellationToken) > 0)
            {
                return null;
            }
        }

        // A gap: under the clock's row lock (a replica that comes back at the same moment waits here, then finds the
        // heartbeat moved and extends nothing), extend the leases, move the heartbeat, and commit durably before the
        // caller claims.
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        DateTimeOffset? previous;
        await using (var lockClock = new NpgsqlCommand(LockClockSql, connection, transaction))
        {
            await using var reader = await lockClock.ExecuteReaderAsync(cancellationToken);
            previous = await reader.ReadAsync(cancellationToken) && !reader.IsDBNull(0) ? reader.GetFieldValue<DateTimeOffset>(0) : null;
        }

        LeaseClockPause? pause = null;
        if (previous is { } from && now - from > maxGap)
        {
            await using var extend = new NpgsqlCommand(ExtendLeasesSql, connection, transaction);
            extend.Parameters.Add(new NpgsqlParameter<TimeSpan>("gap", now - from));
            extend.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("from", from));
            pause = new LeaseClockPause { From = from, To = now, Extended = await extend.ExecuteNonQueryAsync(cancellationToken) };
        }

        await using (var move = new NpgsqlCommand(MoveClockSql, connection, transaction))
        {
            move.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
            await move.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return pause;
    }

    public async Task<int> ReleaseLeasesAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(
            """
            UPDATE spool.recipients
            SET state = 0, lease_id = NULL, lease_expires_at = NULL, lease_owner = NULL, next_attempt_at = @now,
                updated_at = @now
            WHERE state = 1 AND lease_expires_at IS NOT NULL
            """);
        command.Parameters.AddWithValue("now", now);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task PingAsync(CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT 1");
        await command.ExecuteScalarAsync(cancellationToken);
    }

    public async Task<IReadOnlyDictionary<RecipientState, long>> CountByStateAsync(CancellationToken cancellationToken)
    {
        var counts = Enum.GetValues<RecipientState>().ToDictionary(state => state, _ => 0L);
        await using var command = _dataSource.CreateCommand(CountSql);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            counts[(RecipientState)reader.GetInt16(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    public async Task<int> PurgeCompletedAsync(DateTimeOffset olderThan, CancellationToken cancellationToken)
    {
        // Small batches keep each transaction (and the cascade to recipients and attempts) short, so purging a
        // large backlog never holds locks that Ingress or Queue wait on.
        var total = 0;
        int deleted;
        do
        {
            await using var command = _dataSource.CreateCommand(PurgeSql);
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("older_than", StoreArguments.Truncate(olderThan)));
            command.Parameters.Add(new NpgsqlParameter<int>("limit", PurgeBatchSize));
            deleted = await command.ExecuteNonQueryAsync(cancellationToken);
            total += deleted;
        }
        while (deleted == PurgeBatchSize);

        return total;
    }

    private static NpgsqlParameter<string?> Text(string name, string? value) =>
        new(name, NpgsqlDbType.Text) { TypedValue = value };

    private static NpgsqlParameter Timestamp(string name, DateTimeOffset? value) =>
        new(name, NpgsqlDbType.TimestampTz) { Value = value.HasValue ? value.Value : DBNull.Value };

    /// <summary>A recipient's status from the columns of StatusRecipientsSql, starting at <paramref name="first"/>.</summary>
    private static RecipientStatus ReadRecipientStatus(NpgsqlDataReader reader, int first)
    {
        var state = (RecipientState)reader.GetInt16(first + 3);
        return new RecipientStatus
        {
            RecipientId = reader.GetInt64(first),
            Address = reader.GetString(first + 1),
            Domain = reader.GetString(first + 2),
            State = state,
            Attempts = reader.GetInt32(first + 4),
            NextAttemptAt = state is RecipientState.Queued or RecipientState.Deferred ? reader.GetFieldValue<DateTimeOffset>(first + 5) : null,
            LastReplyCode = reader.IsDBNull(first + 6) ? null : reader.GetInt16(first + 6),
            LastEnhancedCode = NullableString(reader, first + 7),
            LastReplyText = NullableString(reader, first + 8),
            LastRemoteHost = NullableString(reader, first + 9),
            UpdatedAt = reader.GetFieldValue<DateTimeOffset>(first + 10),
            Notify = NullableString(reader, first + 11),
            OriginalRecipient = NullableString(reader, first + 12),
            LastBounceClass = NullableString(reader, first + 13),
        };
    }

    private static string? NullableString(NpgsqlDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}
