using System.Runtime.InteropServices;
using System.Text.Json;
using MailMesh.Storage.Content;
using Microsoft.Data.Sqlite;

namespace MailMesh.Storage.Sqlite;

/// <summary>
/// The spool in one SQLite file, for Standalone (one process). Same contract as the PostgreSQL spool: every write is
/// an operation of <see cref="SqliteDatabase.WriteAsync{T}"/>, run inside a <c>BEGIN IMMEDIATE</c> transaction
/// (shared with the other writes of its group commit, under its own savepoint) and acknowledged only after the
/// <c>synchronous=FULL</c> commit returned. A claim reads and updates due recipients inside that transaction, which is
/// what SKIP LOCKED gives PostgreSQL: no two claimers ever see the same due recipient, and a claim sees every write
/// queued before it. Timestamps are unix milliseconds. Parameters are computed before an operation is queued, so the
/// writer, which every write waits for, only executes statements.
/// </summary>
public sealed class SqliteSpool(SqliteDatabase database) : ISpool
{
    private const string InsertMessageSql =
        """
        INSERT INTO spool_messages (id, sender, size, received_at, origin, client_address, client_helo,
            auth_user, body_type, smtputf8, requiretls, envid, ret, trace_parent, completed_at, pool)
        VALUES (@id, @sender, @size, @received_at, @origin, @client_address, @client_helo,
            @auth_user, @body_type, @smtputf8, @requiretls, @envid, @ret, @trace_parent, @completed_at, @pool)
        ON CONFLICT (id) DO NOTHING
        """;

    /// <summary>The content goes in a row of its own (migration 0024): updates of the envelope never rewrite it.</summary>
    private const string InsertContentSql = "INSERT INTO spool_contents (message_id, content) VALUES (@id, @content)";

    /// <summary>
    /// Content above this is not bound as a parameter (Microsoft.Data.Sqlite needs a byte[], and SQLite copies a bound
    /// blob again): the content row gets a zeroblob of the right size and the content is written into it with incremental blob
    /// I/O straight from the caller's memory. Ingress's receive buffer is then the only copy. Below this a bound parameter
    /// is cheaper (one statement, no blob handle), and its array is an ordinary small-object allocation: the limit sits
    /// under the large-object heap's 85,000 octets, where a copy per message cost a gen-2 collection every few hundred
    /// messages of 100 KB (issue 8).
    /// </summary>
    private const int StreamedContentThreshold = 32 * 1024;

    private const string InsertContentZeroBlobSql = "INSERT INTO spool_contents (message_id, content) VALUES (@id, zeroblob(@size))";

    private const string InsertRecipientSql =
        """
        INSERT INTO spool_recipients (message_id, address, domain, state, next_attempt_at, notify, orcpt, updated_at, received_at)
        VALUES (@message_id, @address, @domain, @state, @next_attempt_at, @notify, @orcpt, @updated_at, @updated_at)
        """;

    private const string GetMessageSql =
        """
        SELECT m.sender, c.content, m.received_at, m.origin, m.client_address, m.client_helo, m.auth_user, m.body_type,
            m.smtputf8, m.requiretls, m.envid, m.ret, m.trace_parent, m.pool
        FROM spool_messages AS m JOIN spool_contents AS c ON c.message_id = m.id
        WHERE m.id = @id
        """;

    private const string StartAttemptReadSql =
        """
        SELECT m.sender, m.size <= @inline_limit, m.received_at, m.origin, m.client_address, m.client_helo,
            m.auth_user, m.body_type, m.smtputf8, m.requiretls, m.envid, m.ret, m.trace_parent, m.pool, m.size, c.id
        FROM spool_messages AS m JOIN spool_contents AS c ON c.message_id = m.id
        WHERE m.id = @id
        """;

    private const string ContentRowSql = "SELECT id FROM spool_contents WHERE message_id = @id";

    // Each branch walks its partial index (spool_recipients_due, spool_recipients_lease) in order and stops at LIMIT.
    private const string DueSql =
        """
        SELECT r.id, r.message_id, r.domain, r.address, r.attempts, r.notify, r.orcpt, m.received_at, m.trace_parent,
            c.due_at, m.pool
        FROM (
            SELECT id, due_at FROM (
                SELECT id, next_attempt_at AS due_at FROM spool_recipients
                WHERE state IN (0, 2) AND next_attempt_at <= @now
                    AND domain NOT IN (SELECT value FROM json_each(@full_domains))
                ORDER BY next_attempt_at LIMIT @limit)
            UNION ALL
            SELECT id, due_at FROM (
                SELECT id, lease_expires_at AS due_at FROM spool_recipients
                WHERE state = 1 AND lease_expires_at <= @now
                ORDER BY lease_expires_at LIMIT @limit)
        ) AS c
            JOIN spool_recipients AS r ON r.id = c.id
            JOIN spool_messages AS m ON m.id = r.message_id
        ORDER BY c.due_at, c.id
        LIMIT @limit
        """;

    private const string LeaseSql =
        """
        UPDATE spool_recipients
        SET state = 1, attempts = attempts + 1, lease_id = @lease_id, lease_expires_at = @lease_expires_at,
            lease_owner = NULL, updated_at = @now
        WHERE id = @id
        """;

    // Live leases per domain: the in-flight window (a recorded result has no expiry and is not counted).
    private const string InFlightSql =
        """
        SELECT domain, count(DISTINCT lease_id)
        FROM spool_recipients
        WHERE state = 1 AND lease_expires_at > @now
        GROUP BY domain
        """;

    private const string TakeLeaseSql =
        """
        UPDATE spool_recipients
        SET lease_owner = @owner, lease_expires_at = max(lease_expires_at, @lease_expires_at)
        WHERE message_id = @message_id AND lease_id = @lease_id AND state = 1 AND lease_expires_at IS NOT NULL
            AND (lease_owner IS NULL OR lease_owner = @owner)
        """;

    private const string RenewLeaseSql =
        """
        UPDATE spool_recipients
        SET lease_expires_at = max(lease_expires_at, @lease_expires_at)
        WHERE message_id = @message_id AND lease_id = @lease_id AND state = 1 AND lease_expires_at IS NOT NULL
            AND lease_owner = @owner
        """;

    private const string PendingResultSql =
        """
        UPDATE spool_recipients
        SET lease_expires_at = NULL
        WHERE id = @id AND message_id = @message_id AND lease_id = @lease_id AND state = 1
        """;

    private const string InsertResultSql =
        """
        INSERT INTO spool_results (lease_id, message_id, payload, trace_parent, created_at, next_try_at)
        VALUES (@lease_id, @message_id, @payload, @trace_parent, @now, @now)
        ON CONFLICT (lease_id) DO NOTHING
        """;

    private const string DueResultsSql =
        """
        SELECT lease_id, message_id, payload, tries, trace_parent
        FROM spool_results
        WHERE next_try_at <= @now
        ORDER BY next_try_at
        LIMIT @limit
        """;

    private const string HideResultSql =
        "UPDATE spool_results SET tries = tries + 1, next_try_at = @next_try_at WHERE lease_id = @lease_id";

    private const string DeleteResultSql = "DELETE FROM spool_results WHERE lease_id = @lease_id";

    private const string ApplyUpdateSql =
        """
        UPDATE spool_recipients
        SET state = @state, next_attempt_at = @next_attempt_at, lease_id = NULL, lease_expires_at = NULL,
            attempts = max(attempts - @not_attempted, 0), last_reply_code = @reply_code, last_enhanced_code = @enhanced_code, last_reply_text = @reply_text,
            last_remote_host = @remote_host, updated_at = @attempted_at, last_bounce_class = @bounce_class
        WHERE id = @id AND message_id = @message_id AND state = 1 AND lease_id = @lease_id
        """;

    private const string InsertAttemptSql =
        """
        INSERT INTO spool_attempts (recipient_id, attempted_at, reply_code, enhanced_code, reply_text, remote_host, state, bounce_class,
            tls_protocol, tls_cipher, tls_verification)
        VALUES (@id, @attempted_at, @reply_code, @enhanced_code, @reply_text, @remote_host, @state, @bounce_class,
            @tls_protocol, @tls_cipher, @tls_verification)
        """;

    private const string CompleteMessageSql =
        """
        UPDATE spool_messages
        SET completed_at = @completed_at
        WHERE id = @message_id AND completed_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM spool_recipients WHERE message_id = @message_id AND state IN (0, 1, 2))
        """;

    private const string StatusMessageSql =
        "SELECT sender, received_at, size, origin, completed_at FROM spool_messages WHERE id = @id";

    private const string StatusRecipientsSql =
        """
        SELECT id, address, domain, state, attempts, next_attempt_at, last_reply_code, last_enhanced_code,
            last_reply_text, last_remote_host, updated_at, notify, orcpt, last_bounce_class
        FROM spool_recipients
        WHERE message_id = @id
        ORDER BY id
        """;

    private const string StatusAttemptsSql =
        """
        SELECT a.recipient_id, a.attempted_at, a.state, a.reply_code, a.enhanced_code, a.reply_text, a.remote_host, a.bounce_class,
            a.tls_protocol, a.tls_cipher, a.tls_verification
        FROM spool_attempts AS a
            JOIN spool_recipients AS r ON r.id = a.recipient_id
        WHERE r.message_id = @id
        ORDER BY a.recipient_id, a.attempted_at, a.id
        """;

    private const string CountSql = "SELECT state, count(*) FROM spool_recipients GROUP BY state";

    private const int PurgeBatchSize = 500;

    private const string PurgeSql =
        """
        DELETE FROM spool_messages
        WHERE id IN (
            SELECT id FROM spool_messages
            WHERE completed_at IS NOT NULL AND completed_at < @older_than
            ORDER BY completed_at
            LIMIT @limit)
        """;

    public Task<bool> StoreAsync(NewMessage message, CancellationToken cancellationToken)
    {
        StoreArguments.CheckNewMessage(message);
        var receivedAt = StoreArguments.ToUnixMs(message.ReceivedAt);
        var nextAttemptAt = StoreArguments.ToUnixMs(message.NotBefore ?? message.ReceivedAt);
        var completedAt = message.Recipients.All(r => r.State.IsFinal()) ? receivedAt : (long?)null;
        var length = message.ContentLength;
        var streamed = message.ContentSource is not null || length > StreamedContentThreshold;
        var content = streamed ? null : ToArray(message.Content);
        var recipients = message.Recipients
            .Select(r => (r.Address, Domain: StoreArguments.DomainOf(r.Address), r.State, r.Notify, r.OriginalRecipient))
            .ToArray();
        var size = length + recipients.Sum(r => (long)r.Address.Length + 64);

        return database.WriteAsync(async write =>
        {
            await using (var insert = write.CreateCommand(InsertMessageSql))
            {
                insert.Add("@id", message.Id);
                insert.Add("@sender", message.Sender);
                insert.Add("@size", length);
                insert.Add("@received_at", receivedAt);
                insert.Add("@origin", (int)message.Origin);
                insert.Add("@client_address", message.ClientAddress);
                insert.Add("@client_helo", message.ClientHelo);
                insert.Add("@auth_user", message.AuthenticatedUser);
                insert.Add("@body_type", (int)message.BodyType);
                insert.Add("@smtputf8", message.SmtpUtf8);
                insert.Add("@requiretls", message.RequireTls);
                insert.Add("@envid", message.EnvelopeId);
                insert.Add("@ret", message.Ret);
                insert.Add("@trace_parent", message.TraceParent);
                insert.Add("@completed_at", completedAt);
                insert.Add("@pool", message.Pool);

                // Also false when the same id was stored earlier in the same batch: that row is visible here.
                if (await insert.ExecuteNonQueryAsync(CancellationToken.None) == 0)
                {
                    return false;
                }
            }

            await using (var insert = write.CreateCommand(streamed ? InsertContentZeroBlobSql : InsertContentSql))
            {
                insert.Add("@id", message.Id);
                if (streamed)
                {
                    insert.Add("@size", length);
                }
                else
                {
                    insert.Add("@content", content);
                }

                await insert.ExecuteNonQueryAsync(CancellationToken.None);
            }

            if (streamed)
            {
                if (message.ContentSource is { } source)
                {
                    await WriteContentAsync(write, source);
                }
                else
                {
                    WriteContent(write, message.Content);
                }
            }

            if (recipients.Length > 0)
            {
                // One prepared statement, re-bound per recipient, inside the one transaction.
                await using var insert = write.CreateCommand(InsertRecipientSql);
                insert.Add("@message_id", message.Id);
                var address = insert.Add("@address", string.Empty);
                var domain = insert.Add("@domain", string.Empty);
                var state = insert.Add("@state", 0);
                insert.Add("@next_attempt_at", nextAttemptAt);
                var notify = insert.Add("@notify", null);
                var orcpt = insert.Add("@orcpt", null);
                insert.Add("@updated_at", receivedAt);
                insert.Prepare();
                foreach (var recipient in recipients)
                {
                    address.Value = recipient.Address;
                    domain.Value = recipient.Domain;
                    state.Value = (int)recipient.State;
                    notify.Value = (object?)recipient.Notify ?? DBNull.Value;
                    orcpt.Value = (object?)recipient.OriginalRecipient ?? DBNull.Value;
                    await insert.ExecuteNonQueryAsync(CancellationToken.None);
                }
            }

            return true;
        }, size, cancellationToken);
    }

    public async Task<StoredMessage?> GetMessageAsync(Guid messageId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = GetMessageSql;
        command.Add("@id", messageId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return Envelope(reader, messageId, reader.GetFieldValue<byte[]>(1));
    }

    /// <summary>A message read by <see cref="GetMessageSql"/> or <see cref="StartAttemptReadSql"/>: the envelope in
    /// columns 0 and 2 to 13, the content given.</summary>
    private static StoredMessage Envelope(SqliteDataReader reader, Guid messageId, ReadOnlyMemory<byte> content) => new()
    {
        Id = messageId,
        Sender = reader.GetString(0),
        Content = content,
        ReceivedAt = reader.Timestamp(2),
        Origin = (MessageOrigin)reader.GetInt32(3),
        ClientAddress = reader.NullableString(4),
        ClientHelo = reader.NullableString(5),
        AuthenticatedUser = reader.NullableString(6),
        BodyType = (BodyType)reader.GetInt32(7),
        SmtpUtf8 = reader.GetBoolean(8),
        RequireTls = reader.GetBoolean(9),
        EnvelopeId = reader.NullableString(10),
        Ret = reader.NullableString(11),
        TraceParent = reader.NullableString(12),
        Pool = reader.NullableString(13),
    };

    public Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(DateTimeOffset now, int maxRecipients, TimeSpan leaseDuration, CancellationToken cancellationToken) =>
        ClaimDueAsync(new ClaimRequest { Now = now, MaxRecipients = maxRecipients, LeaseDuration = leaseDuration }, cancellationToken);

    public async Task<IReadOnlyList<DeliveryJob>> ClaimDueAsync(ClaimRequest request, CancellationToken cancellationToken)
    {
        var claim = StoreArguments.CheckClaim(request);
        var claimed = await database.WriteAsync(write => ClaimAsync(write, claim), 0, cancellationToken);
        return claimed.Count == 0 ? [] : ClaimedRow.ToJobs(claimed, claim.Expires);
    }

    /// <summary>The claim, as one write operation: reads due rows and leases them in the same transaction.</summary>
    private static async Task<List<ClaimedRow>> ClaimAsync(
        SqliteWrite write, (DateTimeOffset Now, DateTimeOffset Expires, int MaxRecipients, int Scan, long MaxJobs, long MaxDomainJobs) claim)
    {
        var nowMs = StoreArguments.ToUnixMs(claim.Now);
        var expires = claim.Expires;
        var inFlight = new Dictionary<string, long>(StringComparer.Ordinal);
        if (claim.MaxJobs < int.MaxValue || claim.MaxDomainJobs < int.MaxValue)
        {
            await using var count = write.CreateCommand(InFlightSql);
            count.Add("@now", nowMs);
            await using var reader = await count.ExecuteReaderAsync(CancellationToken.None);
            while (await reader.ReadAsync(CancellationToken.None))
            {
                inFlight[reader.GetString(0)] = reader.GetInt64(1);
            }
        }

        // Nothing is read when the window has no room, and nothing of a domain whose own window is full: a backlog
        // behind a full window costs the writer no scan per round (issue 8).
        if (claim.MaxJobs - inFlight.Values.Sum() <= 0)
        {
            return [];
        }

        var fullDomains = inFlight.Where(d => d.Value >= claim.MaxDomainJobs).Select(d => d.Key).ToArray();
        var candidates = new List<(ClaimedRow Row, int Attempts)>();
        await using (var select = write.CreateCommand(DueSql))
        {
            select.Add("@now", nowMs);
            select.Add("@limit", claim.Scan);
            select.Add("@full_domains", JsonSerializer.Serialize(fullDomains));
            await using var reader = await select.ExecuteReaderAsync(CancellationToken.None);
            while (await reader.ReadAsync(CancellationToken.None))
            {
                var attempt = reader.GetInt32(4) + 1;
                candidates.Add((new ClaimedRow(
                    MessageId: reader.GetGuid(1),
                    Domain: reader.GetString(2),
                    LeaseId: Guid.Empty,
                    ReceivedAt: reader.Timestamp(7),
                    TraceParent: reader.NullableString(8),
                    DueAt: reader.Timestamp(9),
                    Recipient: new ClaimedRecipient
                    {
                        RecipientId = reader.GetInt64(0),
                        Address = reader.GetString(3),
                        Attempt = attempt,
                        Notify = reader.NullableString(5),
                        OriginalRecipient = reader.NullableString(6),
                    })
                { Pool = reader.NullableString(10) }, attempt));
            }
        }

        // The window, as PostgreSQL's claim applies it: jobs (message, domain) in due order, each admitted while its
        // domain and the total stay inside the limits; then at most MaxRecipients recipients of the admitted jobs.
        var room = Math.Max(0, claim.MaxJobs - inFlight.Values.Sum());
        var admitted = new HashSet<(Guid, string)>();
        var rejected = new HashSet<(Guid, string)>();
        var due = new List<(ClaimedRow Row, int Attempts)>();
        foreach (var candidate in candidates)
        {
            var job = (candidate.Row.MessageId, candidate.Row.Domain);
            if (!admitted.Contains(job))
            {
                if (rejected.Contains(job))
                {
                    continue;
                }

                var domainJobs = inFlight.GetValueOrDefault(job.Domain);
                if (room <= 0 || domainJobs >= claim.MaxDomainJobs)
                {
                    rejected.Add(job);
                    continue;
                }

                admitted.Add(job);
                inFlight[job.Domain] = domainJobs + 1;
                room--;
            }

            due.Add(candidate);
            if (due.Count == claim.MaxRecipients)
            {
                break;
            }
        }

        if (due.Count == 0)
        {
            return [];
        }

        // A fresh lease per (message, domain): the unit Delivery works on.
        var leases = new Dictionary<(Guid, string), Guid>();
        var claimed = new List<ClaimedRow>(due.Count);
        await using (var update = write.CreateCommand(LeaseSql))
        {
            var leaseId = update.Add("@lease_id", Guid.Empty);
            update.Add("@lease_expires_at", StoreArguments.ToUnixMs(expires));
            update.Add("@now", nowMs);
            var id = update.Add("@id", 0L);
            update.Prepare();
            foreach (var (row, _) in due)
            {
                if (!leases.TryGetValue((row.MessageId, row.Domain), out var lease))
                {
                    leases[(row.MessageId, row.Domain)] = lease = Guid.NewGuid();
                }

                leaseId.Value = lease;
                id.Value = row.Recipient.RecipientId;
                await update.ExecuteNonQueryAsync(CancellationToken.None);
                claimed.Add(row with { LeaseId = lease });
            }
        }

        return claimed;
    }

    public async Task<IReadOnlyList<RecipientUpdate>> CompleteAttemptAsync(Guid messageId, Guid leaseId, IReadOnlyList<RecipientUpdate> updates, CancellationToken cancellationToken)
    {
        StoreArguments.CheckUpdates(updates);
        if (updates.Count == 0)
        {
            return [];
        }

        return await database.WriteAsync(write => CompleteAsync(write, messageId, leaseId, updates), 0, cancellationToken);
    }

    public async Task<IReadOnlyList<IReadOnlyList<RecipientUpdate>>> CompleteAttemptsAsync(IReadOnlyList<AttemptCompletion> attempts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(attempts);
        foreach (var attempt in attempts)
        {
            ArgumentNullException.ThrowIfNull(attempt);
            StoreArguments.CheckUpdates(attempt.Updates);
        }

        // One write operation, so one transaction (and the group commit's one fsync) for all of them.
        return await database.WriteAsync(
            async write =>
            {
                var applied = new List<IReadOnlyList<RecipientUpdate>>(attempts.Count);
                foreach (var attempt in attempts)
                {
                    applied.Add(attempt.Updates.Count == 0 ? [] : await CompleteAsync(write, attempt.MessageId, attempt.LeaseId, attempt.Updates));
                }

                return (IReadOnlyList<IReadOnlyList<RecipientUpdate>>)applied;
            },
            0,
            cancellationToken);
    }

    public async Task<IReadOnlyDictionary<Guid, MessageStatus>> GetStatusesAsync(IReadOnlyCollection<Guid> messageIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(messageIds);

        // A local file: one read per message costs no round trip. The contract leaves the history out.
        var statuses = new Dictionary<Guid, MessageStatus>();
        foreach (var id in messageIds.Distinct())
        {
            if (await GetStatusAsync(id, cancellationToken) is { } status)
            {
                statuses[id] = status with { Recipients = [.. status.Recipients.Select(r => r with { History = [] })] };
            }
        }

        return statuses;
    }

    /// <summary>One attempt's outcome, as one write operation: lease-checked updates, history, completion.</summary>
    private static async Task<IReadOnlyList<RecipientUpdate>> CompleteAsync(SqliteWrite write, Guid messageId, Guid leaseId, IReadOnlyList<RecipientUpdate> updates)
    {
        var applied = new List<RecipientUpdate>(updates.Count);
        long completedAt = long.MinValue;
        await using (var update = write.CreateCommand(ApplyUpdateSql))
        await using (var history = write.CreateCommand(InsertAttemptSql))
        {
            update.Add("@message_id", messageId);
            update.Add("@lease_id", leaseId);
            var id = update.Add("@id", 0L);
            var state = update.Add("@state", 0);
            var next = update.Add("@next_attempt_at", 0L);
            var attemptedAt = update.Add("@attempted_at", 0L);
            var replyCode = update.Add("@reply_code", null);
            var enhancedCode = update.Add("@enhanced_code", null);
            var replyText = update.Add("@reply_text", null);
            var remoteHost = update.Add("@remote_host", null);
            var bounceClass = update.Add("@bounce_class", null);
            var notAttempted = update.Add("@not_attempted", 0);
            update.Prepare();

            var historyId = history.Add("@id", 0L);
            var historyAttemptedAt = history.Add("@attempted_at", 0L);
            var historyReplyCode = history.Add("@reply_code", null);
            var historyEnhancedCode = history.Add("@enhanced_code", null);
            var historyReplyText = history.Add("@reply_text", null);
            var historyRemoteHost = history.Add("@remote_host", null);
            var historyState = history.Add("@state", 0);
            var historyBounceClass = history.Add("@bounce_class", null);
            var historyTlsProtocol = history.Add("@tls_protocol", null);
            var historyTlsCipher = history.Add("@tls_cipher", null);
            var historyTlsVerification = history.Add("@tls_verification", null);
            history.Prepare();

            foreach (var item in updates)
            {
                id.Value = item.RecipientId;
                state.Value = (int)item.State;
                next.Value = StoreArguments.ToUnixMs(StoreArguments.NextAttemptAt(item));
                attemptedAt.Value = StoreArguments.ToUnixMs(item.AttemptedAt);
                replyCode.Value = (object?)item.ReplyCode ?? DBNull.Value;
                enhancedCode.Value = (object?)item.EnhancedCode ?? DBNull.Value;
                replyText.Value = (object?)item.ReplyText ?? DBNull.Value;
                remoteHost.Value = (object?)item.RemoteHost ?? DBNull.Value;
                bounceClass.Value = (object?)item.BounceClass ?? DBNull.Value;
                notAttempted.Value = item.NotAttempted ? 1 : 0;
                if (await update.ExecuteNonQueryAsync(CancellationToken.None) == 0)
                {
                    continue; // not in flight under this lease: a late or repeated result
                }

                if (item.NotAttempted)
                {
                    // Not tried (traffic shaping, warm-up caps): not an attempt, no history.
                    applied.Add(item);
                    completedAt = Math.Max(completedAt, (long)attemptedAt.Value);
                    continue;
                }

                historyId.Value = id.Value;
                historyAttemptedAt.Value = attemptedAt.Value;
                historyReplyCode.Value = replyCode.Value;
                historyEnhancedCode.Value = enhancedCode.Value;
                historyReplyText.Value = replyText.Value;
                historyRemoteHost.Value = remoteHost.Value;
                historyState.Value = state.Value;
                historyBounceClass.Value = bounceClass.Value;
                historyTlsProtocol.Value = (object?)item.TlsProtocol ?? DBNull.Value;
                historyTlsCipher.Value = (object?)item.TlsCipher ?? DBNull.Value;
                historyTlsVerification.Value = (object?)item.TlsVerification ?? DBNull.Value;
                await history.ExecuteNonQueryAsync(CancellationToken.None);

                applied.Add(item);
                completedAt = Math.Max(completedAt, (long)attemptedAt.Value);
            }
        }

        if (applied.Count > 0)
        {
            await using var complete = write.CreateCommand(CompleteMessageSql);
            complete.Add("@message_id", messageId);
            complete.Add("@completed_at", completedAt);
            await complete.ExecuteNonQueryAsync(CancellationToken.None);
        }

        return applied;
    }

    public async Task<MessageStatus?> GetStatusAsync(Guid messageId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);

        // One read transaction: the message, its recipients and their history from one snapshot.
        await using var transaction = connection.BeginTransaction(deferred: true);
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.Add("@id", messageId);

        command.CommandText = StatusMessageSql;
        string sender;
        DateTimeOffset receivedAt;
        long size;
        MessageOrigin origin;
        DateTimeOffset? completedAt;
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            if (!await reader.ReadAsync(cancellationToken))
            {
                return null;
            }

            sender = reader.GetString(0);
            receivedAt = reader.Timestamp(1);
            size = reader.GetInt64(2);
            origin = (MessageOrigin)reader.GetInt32(3);
            completedAt = reader.NullableTimestamp(4);
        }

        command.CommandText = StatusAttemptsSql;
        var history = new Dictionary<long, List<AttemptRecord>>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var recipientId = reader.GetInt64(0);
                if (!history.TryGetValue(recipientId, out var list))
                {
                    history[recipientId] = list = [];
                }

                list.Add(new AttemptRecord
                {
                    AttemptedAt = reader.Timestamp(1),
                    State = (RecipientState)reader.GetInt32(2),
                    ReplyCode = reader.IsDBNull(3) ? null : reader.GetInt32(3),
                    EnhancedCode = reader.NullableString(4),
                    ReplyText = reader.NullableString(5),
                    RemoteHost = reader.NullableString(6),
                    BounceClass = reader.NullableString(7),
                    TlsProtocol = reader.NullableString(8),
                    TlsCipher = reader.NullableString(9),
                    TlsVerification = reader.NullableString(10),
                });
            }
        }

        command.CommandText = StatusRecipientsSql;
        var recipients = new List<RecipientStatus>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var id = reader.GetInt64(0);
                var state = (RecipientState)reader.GetInt32(3);
                recipients.Add(new RecipientStatus
                {
                    RecipientId = id,
                    Address = reader.GetString(1),
                    Domain = reader.GetString(2),
                    State = state,
                    Attempts = reader.GetInt32(4),
                    NextAttemptAt = state is RecipientState.Queued or RecipientState.Deferred ? reader.Timestamp(5) : null,
                    LastReplyCode = reader.IsDBNull(6) ? null : reader.GetInt32(6),
                    LastEnhancedCode = reader.NullableString(7),
                    LastReplyText = reader.NullableString(8),
                    LastRemoteHost = reader.NullableString(9),
                    UpdatedAt = reader.Timestamp(10),
                    Notify = reader.NullableString(11),
                    OriginalRecipient = reader.NullableString(12),
                    LastBounceClass = reader.NullableString(13),
                    History = history.TryGetValue(id, out var h) ? h : [],
                });
            }
        }

        return new MessageStatus
        {
            Id = messageId,
            Sender = sender,
            ReceivedAt = receivedAt,
            Size = size,
            Origin = origin,
            CompletedAt = completedAt,
            Recipients = recipients,
        };
    }

    public Task<StoredMessage?> StartAttemptAsync(Guid messageId, Guid leaseId, Guid ownerId, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken)
    {
        var expiresMs = StoreArguments.ToUnixMs(leaseExpiresAt);
        return database.WriteAsync(async write =>
        {
            await using (var take = write.CreateCommand(TakeLeaseSql))
            {
                take.Add("@owner", ownerId);
                take.Add("@lease_expires_at", expiresMs);
                take.Add("@message_id", messageId);
                take.Add("@lease_id", leaseId);
                if (await take.ExecuteNonQueryAsync(CancellationToken.None) == 0)
                {
                    return null;
                }
            }

            // A large body is not read here, on the writer: the attempt streams it afterwards (CopyContentAsync). An
            // inline one is read after the row, by incremental blob I/O straight into a rented array: selecting the
            // column made SQLite copy the blob into its own memory and the data reader into a new array (issue 8).
            StoredMessage stored;
            long rowId;
            await using (var read = write.CreateCommand(StartAttemptReadSql))
            {
                read.Add("@id", messageId);
                read.Add("@inline_limit", (long)StoredMessage.InlineContentLimit);
                await using var reader = await read.ExecuteReaderAsync(CancellationToken.None);
                if (!await reader.ReadAsync(CancellationToken.None))
                {
                    return null;
                }

                rowId = reader.GetInt64(15);
                stored = Envelope(reader, messageId, ReadOnlyMemory<byte>.Empty) with
                {
                    DetachedContentLength = reader.GetBoolean(1) ? null : reader.GetInt64(14),
                };
            }

            if (stored.DetachedContentLength is not null)
            {
                return stored;
            }

            using var blob = new SqliteBlob(write.Connection, "spool_contents", "content", rowId, readOnly: true);
            var rented = RentedContent.Read(blob, checked((int)blob.Length));
            return stored with { Content = rented.Memory, ContentLease = rented };
        }, 0, cancellationToken);
    }

    public async Task<bool> CopyContentAsync(Guid messageId, Stream destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        await using var connection = await database.OpenAsync(cancellationToken);

        // One read transaction: the row cannot be purged between finding it and reading its blob.
        await using var transaction = connection.BeginTransaction(deferred: true);
        await using var find = connection.CreateCommand();
        find.Transaction = transaction;
        find.CommandText = ContentRowSql;
        find.Add("@id", messageId);
        if (await find.ExecuteScalarAsync(cancellationToken) is not long rowId)
        {
            return false;
        }

        // Incremental blob I/O: the content is copied page by page, never loaded whole.
        await using (var blob = new SqliteBlob(connection, "spool_contents", "content", rowId, readOnly: true))
        {
            await blob.CopyToAsync(destination, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    public Task<bool> RenewLeaseAsync(Guid messageId, Guid leaseId, Guid ownerId, DateTimeOffset leaseExpiresAt, CancellationToken cancellationToken)
    {
        var expiresMs = StoreArguments.ToUnixMs(leaseExpiresAt);
        return database.WriteAsync(async write =>
        {
            await using var renew = write.CreateCommand(RenewLeaseSql);
            renew.Add("@owner", ownerId);
            renew.Add("@lease_expires_at", expiresMs);
            renew.Add("@message_id", messageId);
            renew.Add("@lease_id", leaseId);
            return await renew.ExecuteNonQueryAsync(CancellationToken.None) > 0;
        }, 0, cancellationToken);
    }

    public Task<bool> RecordResultAsync(PendingResult result, DateTimeOffset now, CancellationToken cancellationToken)
    {
        StoreArguments.CheckResult(result);
        var nowMs = StoreArguments.ToUnixMs(now);
        var ids = result.RecipientIds.ToArray();
        return database.WriteAsync(async write =>
        {
            var pending = 0;
            await using (var update = write.CreateCommand(PendingResultSql))
            {
                update.Add("@message_id", result.MessageId);
                update.Add("@lease_id", result.LeaseId);
                var id = update.Add("@id", 0L);
                update.Prepare();
                foreach (var recipientId in ids)
                {
                    id.Value = recipientId;
                    pending += await update.ExecuteNonQueryAsync(CancellationToken.None);
                }
            }

            if (pending == 0)
            {
                return false;
            }

            await using var insert = write.CreateCommand(InsertResultSql);
            insert.Add("@lease_id", result.LeaseId);
            insert.Add("@message_id", result.MessageId);
            insert.Add("@payload", result.Payload);
            insert.Add("@trace_parent", result.TraceParent);
            insert.Add("@now", nowMs);
            await insert.ExecuteNonQueryAsync(CancellationToken.None);
            return true;
        }, result.Payload.Length, cancellationToken);
    }

    public Task<IReadOnlyList<PendingResult>> ClaimResultsAsync(DateTimeOffset now, int maxResults, TimeSpan retryAfter, CancellationToken cancellationToken)
    {
        StoreArguments.CheckClaimResults(maxResults, retryAfter);
        var nowMs = StoreArguments.ToUnixMs(now);
        var retryMs = (long)retryAfter.TotalMilliseconds;
        return database.WriteAsync<IReadOnlyList<PendingResult>>(async write =>
        {
            var results = new List<PendingResult>();
            await using (var select = write.CreateCommand(DueResultsSql))
            {
                select.Add("@now", nowMs);
                select.Add("@limit", maxResults);
                await using var reader = await select.ExecuteReaderAsync(CancellationToken.None);
                while (await reader.ReadAsync(CancellationToken.None))
                {
                    results.Add(new PendingResult
                    {
                        LeaseId = reader.GetGuid(0),
                        MessageId = reader.GetGuid(1),
                        Payload = reader.GetString(2),
                        Tries = reader.GetInt32(3) + 1,
                        TraceParent = reader.NullableString(4),
                    });
                }
            }

            await using var hide = write.CreateCommand(HideResultSql);
            var next = hide.Add("@next_try_at", 0L);
            var lease = hide.Add("@lease_id", Guid.Empty);
            foreach (var result in results)
            {
                next.Value = nowMs + (retryMs << Math.Min(result.Tries - 1, 5));
                lease.Value = result.LeaseId;
                await hide.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return results;
        }, 0, cancellationToken);
    }

    public Task DeleteResultsAsync(IReadOnlyList<Guid> leaseIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leaseIds);
        if (leaseIds.Count == 0)
        {
            return Task.CompletedTask;
        }

        var ids = leaseIds.ToArray();
        return database.WriteAsync(async write =>
        {
            await using var delete = write.CreateCommand(DeleteResultSql);
            var lease = delete.Add("@lease_id", Guid.Empty);
            foreach (var id in ids)
            {
                lease.Value = id;
                await delete.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return 0;
        }, 0, cancellationToken);
    }

    public Task<LeaseClockPause?> BeatLeaseClockAsync(DateTimeOffset now, TimeSpan maxGap, CancellationToken cancellationToken)
    {
        StoreArguments.CheckLeaseClock(maxGap);
        var nowMs = StoreArguments.ToUnixMs(now);
        var maxGapMs = (long)maxGap.TotalMilliseconds;

        // One write operation: the writer's transaction is what the row lock is in PostgreSQL.
        return database.WriteAsync<LeaseClockPause?>(async write =>
        {
            long? previous;
            await using (var read = write.CreateCommand("SELECT beat_at FROM spool_lease_clock WHERE id = 1"))
            {
                var value = await read.ExecuteScalarAsync(CancellationToken.None);
                previous = value is long ms ? ms : null;
            }

            LeaseClockPause? pause = null;
            if (previous is { } fromMs && nowMs - fromMs > maxGapMs)
            {
                await using var extend = write.CreateCommand(
                    """
                    UPDATE spool_recipients
                    SET lease_expires_at = lease_expires_at + @gap
                    WHERE state = 1 AND lease_expires_at > @from
                    """);
                extend.Add("@gap", nowMs - fromMs);
                extend.Add("@from", fromMs);
                pause = new LeaseClockPause
                {
                    From = StoreArguments.FromUnixMs(fromMs),
                    To = StoreArguments.FromUnixMs(nowMs),
                    Extended = await extend.ExecuteNonQueryAsync(CancellationToken.None),
                };
            }

            await using var move = write.CreateCommand("UPDATE spool_lease_clock SET beat_at = max(coalesce(beat_at, @now), @now) WHERE id = 1");
            move.Add("@now", nowMs);
            await move.ExecuteNonQueryAsync(CancellationToken.None);
            return pause;
        }, 0, cancellationToken);
    }

    public Task<int> ReleaseLeasesAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var nowMs = StoreArguments.ToUnixMs(now);
        return database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(
                """
                UPDATE spool_recipients
                SET state = 0, lease_id = NULL, lease_expires_at = NULL, lease_owner = NULL, next_attempt_at = @now,
                    updated_at = @now
                WHERE state = 1 AND lease_expires_at IS NOT NULL
                """);
            command.Add("@now", nowMs);
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, 0, cancellationToken);
    }

    public async Task PingAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        await command.ExecuteScalarAsync(cancellationToken);
    }

    public async Task<IReadOnlyDictionary<RecipientState, long>> CountByStateAsync(CancellationToken cancellationToken)
    {
        var counts = Enum.GetValues<RecipientState>().ToDictionary(state => state, _ => 0L);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = CountSql;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            counts[(RecipientState)reader.GetInt32(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    public async Task<int> PurgeCompletedAsync(DateTimeOffset olderThan, CancellationToken cancellationToken)
    {
        // Short writes, so Ingress never waits behind a large purge: each is one operation of a group commit.
        var cutoff = StoreArguments.ToUnixMs(olderThan);
        var total = 0;
        int deleted;
        do
        {
            deleted = await database.WriteAsync(async write =>
            {
                await using var command = write.CreateCommand(PurgeSql);
                command.Add("@older_than", cutoff);
                command.Add("@limit", PurgeBatchSize);
                return await command.ExecuteNonQueryAsync(CancellationToken.None);
            }, 0, cancellationToken);
            total += deleted;
        }
        while (deleted == PurgeBatchSize);

        return total;
    }

    /// <summary>The rowid of the row just inserted on the writer's connection, whose zeroblob the content fills
    /// (incremental blob I/O, same transaction).</summary>
    private static long LastRowId(SqliteWrite write) => SQLitePCL.raw.sqlite3_last_insert_rowid(write.Connection.Handle);

    /// <summary>Copies a streamed body into the zeroblob the insert reserved, 64 KiB at a time; a source shorter or
    /// longer than it declared fails the transaction.</summary>
    private static async Task WriteContentAsync(SqliteWrite write, MessageContentSource source)
    {
        using var blob = new SqliteBlob(write.Connection, "spool_contents", "content", LastRowId(write));
        await using var stream = source.Open();
        var piece = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long written = 0;
            int read;
            while ((read = await stream.ReadAsync(piece.AsMemory(0, piece.Length), CancellationToken.None)) > 0)
            {
                if (written + read > source.Length)
                {
                    throw new InvalidOperationException("The message content source is longer than its declared length.");
                }

                blob.Write(piece, 0, read);
                written += read;
            }

            if (written != source.Length)
            {
                throw new InvalidOperationException("The message content source is shorter than its declared length.");
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(piece);
        }
    }

    /// <summary>Writes content held in memory into the zeroblob the insert reserved, in one call.</summary>
    private static void WriteContent(SqliteWrite write, ReadOnlyMemory<byte> content)
    {
        using var blob = new SqliteBlob(write.Connection, "spool_contents", "content", LastRowId(write));
        blob.Write(content.Span);
    }

    private static byte[] ToArray(ReadOnlyMemory<byte> content) =>
        MemoryMarshal.TryGetArray(content, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : content.ToArray();
}
