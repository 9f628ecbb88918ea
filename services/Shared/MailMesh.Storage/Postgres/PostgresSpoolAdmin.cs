using System.Globalization;
using System.Text;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// <see cref="ISpoolAdmin"/> over the PostgreSQL spool. Statements are assembled from constant fragments, one per
/// filter member that is set (values are always parameters), so each combination gets a plan that uses its index:
/// messages_received for the newest-first walk, messages_sender_received for a sender, recipients_address and
/// recipients_domain_state for recipient filters (migration 0012), and recipients_state and recipients_final_class,
/// walked newest first, for state and bounce class filters (migration 0022).
/// </summary>
public sealed class PostgresSpoolAdmin(NpgsqlDataSource dataSource) : ISpoolAdmin
{
    // Set once migration 0022's back-fill has finished (PostgresBackfill): from then on every recipient row has its
    // message's received time, and searches by state or class walk the recipients (RecipientWalkSql).
    private volatile bool _backfilled;

    // Serialises with result application (PostgresSpool locks the same rows): a bounce that finishes a message and a
    // result that finishes another of its recipients cannot both miss each other's update in the completion check.
    private const string LockMessagesSql = "SELECT 1 FROM spool.messages WHERE id = ANY(@chunk) ORDER BY id FOR NO KEY UPDATE";

    private const string CompleteMessagesSql =
        """
        UPDATE spool.messages AS m SET completed_at = @now
        WHERE m.id = ANY(@chunk) AND m.completed_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM spool.recipients AS r WHERE r.message_id = m.id AND r.state NOT IN (3, 4, 5, 6))
        """;

    private const string AuditSql =
        """
        INSERT INTO spool.admin_audit (at, actor, action, target, changed, skipped)
        VALUES (@now, @actor, @action, @target, @changed, @skipped)
        RETURNING id
        """;

    private const string RecipientCountsSql =
        """
        SELECT message_id, state, count(*)::int, min(address), min(next_attempt_at)
        FROM spool.recipients
        WHERE message_id = ANY(@ids)
        GROUP BY message_id, state
        """;

    // Reads recipients_pending in index order (migration 0020; kept by 0022) and the in-flight recipients through
    // recipients_in_flight (0026): the recipient row carries its message's received time, so no pending recipient is
    // joined to its message (that join cost 0.5-0.9 s at 75,000 pending recipients).
    private static readonly string SummarySql = SpoolAdminShared.SummarySql("spool.recipients", inFlightApart: true);

    public async Task<MessagePage> ListMessagesAsync(MessageListQuery query, CancellationToken cancellationToken)
    {
        SpoolAdminShared.Check(query);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await BeginSerialAsync(connection, cancellationToken);
        await using var command = new NpgsqlCommand { Connection = connection, Transaction = transaction };
        command.CommandText = SpoolAdminShared.WalksRecipients(query.Filter)
            && (_backfilled || (_backfilled = await PostgresBackfill.IsDoneAsync(connection, transaction, cancellationToken)))
                ? RecipientWalkSql(command, query)
                : MessageWalkSql(command, query);
        command.Parameters.Add(new NpgsqlParameter<int>("limit", query.Limit + 1));

        var page = new MessagePageBuilder(query.Limit);
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                page.AddMessage(reader.GetGuid(0), reader.GetString(1), reader.GetFieldValue<DateTimeOffset>(2), reader.GetInt64(3),
                    (MessageOrigin)reader.GetInt16(4), reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5));
            }
        }

        var ids = page.Trim();
        if (ids.Count > 0)
        {
            await using var recipients = new NpgsqlCommand(RecipientCountsSql, connection, transaction);
            recipients.Parameters.Add(new NpgsqlParameter<Guid[]>("ids", [.. ids]));
            await using var reader = await recipients.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                page.AddCount(reader.GetGuid(0), (RecipientState)reader.GetInt16(1), reader.GetInt32(2), reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4));
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return page.Build();
    }

    /// <summary>
    /// Walks the messages newest first (messages_received, or messages_sender_received for a sender) and checks the
    /// recipient members per message, or lets the planner drive from a selective recipient index (address, domain).
    /// </summary>
    private static string MessageWalkSql(NpgsqlCommand command, MessageListQuery query)
    {
        var sql = new StringBuilder("SELECT m.id, m.sender, m.received_at, m.size, m.origin, m.completed_at FROM spool.messages AS m WHERE true");
        AppendMessagePredicates(sql, command, query.Filter);
        if (query.After is { } after)
        {
            sql.Append(" AND (m.received_at, m.id) < (@after_at, @after_id)");
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("after_at", after.ReceivedAt));
            command.Parameters.Add(new NpgsqlParameter<Guid>("after_id", after.Id));
        }

        if (query.Filter.HasRecipientPredicate)
        {
            sql.Append(" AND EXISTS (SELECT 1 FROM spool.recipients AS r WHERE r.message_id = m.id");
            AppendRecipientPredicates(sql, command, query.Filter);
            sql.Append(')');
        }

        return sql.Append(" ORDER BY m.received_at DESC, m.id DESC LIMIT @limit").ToString();
    }

    /// <summary>
    /// A search by state or bounce class (migration 0022): one arm per <see cref="SpoolAdminShared.SearchArms"/>, each an
    /// equality on recipients_state or recipients_final_class that returns its recipients in (received_at DESC,
    /// message_id DESC) order, drops a message's second matching recipient (Unique) and stops at the page; several
    /// arms are merged in order (Merge Append) and cut to the page again; then those messages are read by primary key. The recipient's received_at is its
    /// message's (copied at store time, never changed), so the keyset and the time range apply to the recipient rows.
    /// </summary>
    internal static string RecipientWalkSql(NpgsqlCommand command, MessageListQuery query)
    {
        var filter = query.Filter;
        var shared = new StringBuilder(" AND r.received_at IS NOT NULL");
        AppendMessagePredicates(shared, command, filter, "r.received_at");
        if (query.After is { } after)
        {
            shared.Append(" AND (r.received_at, r.message_id) < (@after_at, @after_id)");
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("after_at", after.ReceivedAt));
            command.Parameters.Add(new NpgsqlParameter<Guid>("after_id", after.Id));
        }

        var statePredicate = new StringBuilder();
        var classPredicate = new StringBuilder();
        AppendRecipientPredicates(shared, command, filter, statePredicate, classPredicate);

        // With a sender, each arm joins the messages: the planner may then walk the sender's messages instead
        // (messages_sender_received) when that is the smaller set.
        var source = filter.Sender is null ? "spool.recipients AS r" : "spool.recipients AS r JOIN spool.messages AS m ON m.id = r.message_id";
        var arms = SpoolAdminShared.SearchArms(filter);
        var sql = new StringBuilder("WITH page AS MATERIALIZED (");
        if (arms.Count > 1)
        {
            sql.Append("SELECT DISTINCT u.received_at, u.message_id FROM (");
        }

        for (var i = 0; i < arms.Count; i++)
        {
            // Each arm its own ordered, limited subquery: a page's messages are among each arm's first page (an arm's
            // messages rank in it no lower than among all), and PostgreSQL merges ordered subqueries (it does not
            // merge the arms of a plain UNION ALL in order: it appended and sorted them all).
            var name = "arm" + i.ToString(CultureInfo.InvariantCulture);
            sql.Append(i == 0 ? "" : " UNION ALL ").Append(arms.Count > 1 ? "(" : "")
                .Append("SELECT DISTINCT r.received_at, r.message_id FROM ").Append(source).Append(" WHERE ");
            if (arms[i].State is { } state)
            {
                sql.Append("r.state = @").Append(name).Append(classPredicate);
                command.Parameters.Add(new NpgsqlParameter<short>(name, (short)state));
            }
            else
            {
                // The literal state list is recipients_final_class's predicate, so the planner can prove the index applies.
                sql.Append("r.last_bounce_class = @").Append(name).Append(" AND r.state IN (3, 4, 5, 6)").Append(statePredicate);
                command.Parameters.Add(new NpgsqlParameter<string>(name, arms[i].BounceClass!));
            }

            sql.Append(shared).Append(" ORDER BY r.received_at DESC, r.message_id DESC LIMIT @limit").Append(arms.Count > 1 ? ")" : "");
        }

        sql.Append(arms.Count > 1 ? ") AS u ORDER BY u.received_at DESC, u.message_id DESC LIMIT @limit)" : ")");
        return sql.Append(
            """

            SELECT m.id, m.sender, m.received_at, m.size, m.origin, m.completed_at
            FROM page JOIN spool.messages AS m ON m.id = page.message_id
            ORDER BY page.received_at DESC, page.message_id DESC
            """).ToString();
    }

    /// <summary>
    /// A read transaction without parallel workers. Every admin read is a page that stops at its LIMIT or one ordered
    /// pass over a small partial index; PostgreSQL still chose parallel plans for them at a million messages, and on a
    /// busy machine the workers' start-up and the gather cost 3-5 times the work (domain and state: 485-573 ms parallel,
    /// 107-125 ms serial; the queue summary: 295-540 ms against 97-114 ms; docs/performance.md). And always a custom
    /// plan: the data source prepares statements used twice, after five executions PostgreSQL may keep a generic plan,
    /// and the right plan for a search depends on its values (a large domain and state delivered: 2 ms walking the
    /// state index with a custom plan, 1.5 s over HTTP with the generic one, which sorted all 200,000 of them).
    /// </summary>
    private static async Task<NpgsqlTransaction> BeginSerialAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var serial = new NpgsqlCommand(
            "SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL plan_cache_mode = force_custom_plan", connection, transaction);
        await serial.ExecuteNonQueryAsync(cancellationToken);
        return transaction;
    }

    public async Task<AdminActionResult> ApplyAsync(AdminActionRequest request, CancellationToken cancellationToken)
    {
        SpoolAdminShared.Check(request);
        var now = StoreArguments.Truncate(request.Now);
        var changed = 0;
        var skipped = 0;
        var bounced = new List<AdminBouncedRecipient>();
        Guid? after = null;
        while (true)
        {
            var chunk = await TargetChunkAsync(request, after, cancellationToken);
            if (chunk.Length == 0)
            {
                break;
            }

            after = chunk[^1];
            var (c, s) = await ApplyChunkAsync(request, chunk, now, bounced, cancellationToken);
            changed += c;
            skipped += s;
            if (chunk.Length < SpoolAdminLimits.ActionChunk)
            {
                break;
            }
        }

        if (request.Action != AdminAction.Delete)
        {
            skipped = await CountInFlightAsync(request, cancellationToken);
        }

        await using var audit = dataSource.CreateCommand(AuditSql);
        audit.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
        audit.Parameters.Add(new NpgsqlParameter<string>("actor", request.Actor));
        audit.Parameters.Add(new NpgsqlParameter<string>("action", SpoolAdminShared.Name(request.Action)));
        audit.Parameters.Add(new NpgsqlParameter<string>("target", request.Target));
        audit.Parameters.Add(new NpgsqlParameter<int>("changed", changed));
        audit.Parameters.Add(new NpgsqlParameter<int>("skipped", skipped));
        var auditId = (long)(await audit.ExecuteScalarAsync(cancellationToken))!;
        return new AdminActionResult { Action = request.Action, Changed = changed, SkippedInFlight = skipped, AuditId = auditId, Bounced = bounced };
    }

    private async Task<Guid[]> TargetChunkAsync(AdminActionRequest request, Guid? after, CancellationToken cancellationToken)
    {
        var sql = new StringBuilder("SELECT DISTINCT r.message_id FROM spool.recipients AS r JOIN spool.messages AS m ON m.id = r.message_id WHERE true");
        await using var command = dataSource.CreateCommand();
        AppendTarget(sql, command, request);
        var source = SpoolAdminShared.SourceStates(request.Action);
        if (source.Count > 0)
        {
            sql.Append(" AND r.state = ANY(@source)");
            command.Parameters.Add(new NpgsqlParameter<short[]>("source", [.. source.Select(s => (short)s)]));
        }

        if (after is { } a)
        {
            sql.Append(" AND r.message_id > @after");
            command.Parameters.Add(new NpgsqlParameter<Guid>("after", a));
        }

        sql.Append(" ORDER BY r.message_id LIMIT @chunk_size");
        command.Parameters.Add(new NpgsqlParameter<int>("chunk_size", SpoolAdminLimits.ActionChunk));
        command.CommandText = sql.ToString();
        var ids = new List<Guid>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            ids.Add(reader.GetGuid(0));
        }

        return [.. ids];
    }

    private async Task<int> CountInFlightAsync(AdminActionRequest request, CancellationToken cancellationToken)
    {
        var sql = new StringBuilder("SELECT count(*)::int FROM spool.recipients AS r JOIN spool.messages AS m ON m.id = r.message_id WHERE r.state = 1");
        await using var command = dataSource.CreateCommand();
        AppendTarget(sql, command, request);
        command.CommandText = sql.ToString();
        return (int)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private async Task<(int Changed, int Skipped)> ApplyChunkAsync(
        AdminActionRequest request, Guid[] chunk, DateTimeOffset now, List<AdminBouncedRecipient> bounced, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var lockMessages = new NpgsqlCommand(LockMessagesSql, connection, transaction))
        {
            lockMessages.Parameters.Add(new NpgsqlParameter<Guid[]>("chunk", chunk));
            await lockMessages.ExecuteNonQueryAsync(cancellationToken);
        }

        int changed;
        var skipped = 0;
        await using (var command = new NpgsqlCommand { Connection = connection, Transaction = transaction })
        {
            command.Parameters.Add(new NpgsqlParameter<Guid[]>("chunk", chunk));
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
            var sql = new StringBuilder();
            if (request.Action == AdminAction.Delete)
            {
                // A message with a recipient in flight is kept: its attempt owns that recipient until the result is applied.
                sql.Append(
                    """
                    DELETE FROM spool.messages AS d
                    WHERE d.id = ANY(@chunk)
                        AND NOT EXISTS (SELECT 1 FROM spool.recipients AS f WHERE f.message_id = d.id AND f.state = 1)
                        AND EXISTS (SELECT 1 FROM spool.recipients AS r JOIN spool.messages AS m ON m.id = r.message_id
                            WHERE r.message_id = d.id
                    """);
                AppendTarget(sql, command, request);
                sql.Append(')');
                command.CommandText = sql.ToString();
                changed = await command.ExecuteNonQueryAsync(cancellationToken);
                await using var inFlight = new NpgsqlCommand(
                    "SELECT count(DISTINCT message_id)::int FROM spool.recipients WHERE message_id = ANY(@chunk) AND state = 1", connection, transaction);
                inFlight.Parameters.Add(new NpgsqlParameter<Guid[]>("chunk", chunk));
                skipped = (int)(await inFlight.ExecuteScalarAsync(cancellationToken))!;
            }
            else
            {
                sql.Append(request.Action switch
                {
                    AdminAction.Hold => "UPDATE spool.recipients AS r SET state = 7, updated_at = @now",
                    AdminAction.Release => "UPDATE spool.recipients AS r SET state = 0, next_attempt_at = @now, updated_at = @now",
                    AdminAction.Retry => "UPDATE spool.recipients AS r SET next_attempt_at = @now, updated_at = @now",
                    _ => "UPDATE spool.recipients AS r SET state = 4, last_reply_code = NULL, last_enhanced_code = NULL, last_reply_text = @reason, updated_at = @now",
                });
                sql.Append(" FROM spool.messages AS m WHERE m.id = r.message_id AND r.message_id = ANY(@chunk) AND r.state = ANY(@source)");
                command.Parameters.Add(new NpgsqlParameter<short[]>("source", [.. SpoolAdminShared.SourceStates(request.Action).Select(s => (short)s)]));
                if (request.Action == AdminAction.Retry)
                {
                    sql.Append(" AND r.next_attempt_at > @now");
                }

                AppendTarget(sql, command, request);
                if (request.Action == AdminAction.Bounce)
                {
                    command.Parameters.Add(new NpgsqlParameter<string>("reason", request.Reason ?? "bounced by an administrator"));
                    sql.Append(" RETURNING r.id, r.message_id, r.address, r.notify, r.orcpt, r.last_remote_host");
                    command.CommandText = sql.ToString();
                    var these = new List<AdminBouncedRecipient>();
                    await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
                    {
                        while (await reader.ReadAsync(cancellationToken))
                        {
                            these.Add(new AdminBouncedRecipient
                            {
                                RecipientId = reader.GetInt64(0),
                                MessageId = reader.GetGuid(1),
                                Address = reader.GetString(2),
                                Notify = reader.IsDBNull(3) ? null : reader.GetString(3),
                                OriginalRecipient = reader.IsDBNull(4) ? null : reader.GetString(4),
                                LastRemoteHost = reader.IsDBNull(5) ? null : reader.GetString(5),
                            });
                        }
                    }

                    changed = these.Count;
                    if (these.Count > 0)
                    {
                        await using var history = new NpgsqlCommand(
                            """
                            INSERT INTO spool.attempts (recipient_id, attempted_at, reply_text, state)
                            SELECT id, @now, @reason, 4 FROM unnest(@ids) AS id
                            """, connection, transaction);
                        history.Parameters.Add(new NpgsqlParameter<long[]>("ids", [.. these.Select(b => b.RecipientId)]));
                        history.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
                        history.Parameters.Add(new NpgsqlParameter<string>("reason", request.Reason ?? "bounced by an administrator"));
                        await history.ExecuteNonQueryAsync(cancellationToken);

                        await using var complete = new NpgsqlCommand(CompleteMessagesSql, connection, transaction);
                        complete.Parameters.Add(new NpgsqlParameter<Guid[]>("chunk", chunk));
                        complete.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now));
                        await complete.ExecuteNonQueryAsync(cancellationToken);
                        bounced.AddRange(these);
                    }
                }
                else
                {
                    command.CommandText = sql.ToString();
                    changed = await command.ExecuteNonQueryAsync(cancellationToken);
                }
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return (changed, skipped);
    }

    public async Task<QueueSummary> SummarizeAsync(DateTimeOffset now, int maxDomains, CancellationToken cancellationToken)
    {
        // Serial (BeginSerialAsync): the pending index is small (70,000 entries at a million messages) and read in order;
        // a parallel plan only adds a gather and a second aggregation.
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await BeginSerialAsync(connection, cancellationToken);

        await using var command = new NpgsqlCommand(SummarySql, connection, transaction);
        var buckets = SpoolAdminLimits.AgeBucketMinutes;
        for (var i = 0; i < buckets.Count; i++)
        {
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("cut" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), StoreArguments.Truncate(now.AddMinutes(-buckets[i]))));
        }

        var groups = new List<(string, RecipientState, int, long, DateTimeOffset)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var counts = new long[buckets.Count + 1];
        while (await reader.ReadAsync(cancellationToken))
        {
            for (var i = 0; i < counts.Length; i++)
            {
                counts[i] = reader.GetInt64(2 + i);
            }

            groups.AddRange(SpoolAdminShared.SummaryGroups(reader.GetString(0), (RecipientState)reader.GetInt16(1), counts, reader.GetFieldValue<DateTimeOffset>(2 + counts.Length)));
        }

        await reader.CloseAsync();
        await transaction.CommitAsync(cancellationToken);

        return SpoolAdminShared.Summarize(now, maxDomains, groups);
    }

    public async Task<IReadOnlyList<AdminAuditEntry>> ListAuditAsync(long? beforeId, int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """
            SELECT id, at, actor, action, target, changed, skipped FROM spool.admin_audit
            WHERE id < @before ORDER BY id DESC LIMIT @limit
            """);
        command.Parameters.Add(new NpgsqlParameter<long>("before", beforeId ?? long.MaxValue));
        command.Parameters.Add(new NpgsqlParameter<int>("limit", Math.Clamp(limit, 1, SpoolAdminLimits.MaxPage)));
        var entries = new List<AdminAuditEntry>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            entries.Add(new AdminAuditEntry
            {
                Id = reader.GetInt64(0),
                At = reader.GetFieldValue<DateTimeOffset>(1),
                Actor = reader.GetString(2),
                Action = reader.GetString(3),
                Target = reader.GetString(4),
                Changed = reader.GetInt32(5),
                SkippedInFlight = reader.GetInt32(6),
            });
        }

        return entries;
    }

    /// <summary>The request's ids (if any) and filter, over r (recipients) joined to m (messages).</summary>
    private static void AppendTarget(StringBuilder sql, NpgsqlCommand command, AdminActionRequest request)
    {
        if (request.MessageIds is { } ids)
        {
            sql.Append(" AND r.message_id = ANY(@ids)");
            command.Parameters.Add(new NpgsqlParameter<Guid[]>("ids", [.. ids]));
        }

        AppendMessagePredicates(sql, command, request.Filter);
        AppendRecipientPredicates(sql, command, request.Filter);
    }

    /// <summary>The filter's message members; the time range on <paramref name="receivedAt"/> (the recipient's copy, too).</summary>
    private static void AppendMessagePredicates(StringBuilder sql, NpgsqlCommand command, MessageFilter filter, string receivedAt = "m.received_at")
    {
        if (filter.Sender is { } sender)
        {
            sql.Append(" AND lower(m.sender) = lower(@sender)");
            command.Parameters.Add(new NpgsqlParameter<string>("sender", sender));
        }

        if (filter.ReceivedFrom is { } from)
        {
            sql.Append(" AND ").Append(receivedAt).Append(" >= @received_from");
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("received_from", StoreArguments.Truncate(from)));
        }

        if (filter.ReceivedTo is { } to)
        {
            sql.Append(" AND ").Append(receivedAt).Append(" < @received_to");
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("received_to", StoreArguments.Truncate(to)));
        }
    }

    /// <summary>
    /// The filter's recipient members over r. The state and class predicates go to <paramref name="statePredicate"/> and
    /// <paramref name="classPredicate"/> when given: each arm of a search by state or class takes only the one it does
    /// not already imply (the same predicate twice makes the planner square its selectivity and misjudge the arm).
    /// </summary>
    private static void AppendRecipientPredicates(StringBuilder sql, NpgsqlCommand command, MessageFilter filter,
        StringBuilder? statePredicate = null, StringBuilder? classPredicate = null)
    {
        if (filter.Recipient is { } recipient)
        {
            sql.Append(" AND lower(r.address) = lower(@recipient)");
            command.Parameters.Add(new NpgsqlParameter<string>("recipient", recipient));
        }

        if (filter.Domain is { } domain)
        {
            sql.Append(" AND r.domain = @domain");
            command.Parameters.Add(new NpgsqlParameter<string>("domain", domain));
        }

        if (filter.States is { Count: > 0 } states)
        {
            (statePredicate ?? sql).Append(" AND r.state = ANY(@states)");
            command.Parameters.Add(new NpgsqlParameter<short[]>("states", [.. states.Select(s => (short)s)]));
        }
        if (filter.BounceClasses is { Count: > 0 } classes)
        {
            (classPredicate ?? sql).Append(" AND r.last_bounce_class = ANY(@bounce_classes)");
            command.Parameters.Add(new NpgsqlParameter<string[]>("bounce_classes", [.. classes]));
        }
    }
}
