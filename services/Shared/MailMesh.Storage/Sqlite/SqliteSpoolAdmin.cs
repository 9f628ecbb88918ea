using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;

namespace MailMesh.Storage.Sqlite;

/// <summary>
/// <see cref="ISpoolAdmin"/> over the SQLite spool: the same statements as <c>PostgresSpoolAdmin</c> in SQLite's
/// dialect (ids as blobs, unix milliseconds). Each chunk of an action is one operation of the writer, which also
/// serialises it with claims and result application (the job PostgreSQL's row locks do).
/// </summary>
public sealed class SqliteSpoolAdmin(SqliteDatabase database) : ISpoolAdmin
{
    // Reads only spool_recipients_pending (migration 0020; kept by 0022): no join to the messages.
    private static readonly string SummarySql = SpoolAdminShared.SummarySql("spool_recipients", inFlightApart: false);

    public async Task<MessagePage> ListMessagesAsync(MessageListQuery query, CancellationToken cancellationToken)
    {
        SpoolAdminShared.Check(query);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = connection.BeginTransaction(deferred: true);
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = SpoolAdminShared.WalksRecipients(query.Filter) || query.Filter.Recipient is not null
            || (query.Filter.Domain is { } domain && await IsSmallDomainAsync(connection, transaction, domain, cancellationToken))
                ? RecipientWalkSql(command, query)
                : MessageWalkSql(command, query);
        command.Add("@limit", query.Limit + 1);

        var page = new MessagePageBuilder(query.Limit);
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                page.AddMessage(reader.GetGuid(0), reader.GetString(1), reader.Timestamp(2), reader.GetInt64(3), (MessageOrigin)reader.GetInt32(4), reader.NullableTimestamp(5));
            }
        }

        var ids = page.Trim();
        if (ids.Count > 0)
        {
            await using var recipients = connection.CreateCommand();
            recipients.Transaction = transaction;
            recipients.CommandText =
                $"""
                SELECT message_id, state, count(*), min(address), min(next_attempt_at)
                FROM spool_recipients
                WHERE message_id IN ({IdList(recipients, "@m", ids)})
                GROUP BY message_id, state
                """;
            await using var reader = await recipients.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                page.AddCount(reader.GetGuid(0), (RecipientState)reader.GetInt32(1), reader.GetInt32(2), reader.GetString(3), reader.NullableTimestamp(4));
            }
        }

        return page.Build();
    }

    /// <summary>
    /// SQLite plans without statistics: for a recipient or domain filter it walks the messages newest first and probes
    /// each, however few recipients match (one recipient: 1.4 s at a million messages). A recipient filter, and a
    /// domain with fewer recipients than this, are driven from the recipients instead (their index, then a sort of that
    /// small set); a larger domain keeps the walk, which finds a page within a few thousand messages.
    /// </summary>
    internal const int SmallDomainRecipients = 20_000;

    private static async Task<bool> IsSmallDomainAsync(SqliteConnection connection, SqliteTransaction transaction, string domain, CancellationToken cancellationToken)
    {
        await using var count = connection.CreateCommand();
        count.Transaction = transaction;
        count.CommandText = "SELECT count(*) FROM (SELECT 1 FROM spool_recipients WHERE domain = @domain LIMIT @most)";
        count.Add("@domain", domain);
        count.Add("@most", SmallDomainRecipients);
        return Convert.ToInt64(await count.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture) < SmallDomainRecipients;
    }

    /// <summary>Walks the messages newest first and checks the recipient members per message (see PostgresSpoolAdmin).</summary>
    private static string MessageWalkSql(SqliteCommand command, MessageListQuery query)
    {
        var sql = new StringBuilder("SELECT m.id, m.sender, m.received_at, m.size, m.origin, m.completed_at FROM spool_messages AS m WHERE 1");
        AppendMessagePredicates(sql, command, query.Filter);
        if (query.After is { } after)
        {
            sql.Append(" AND (m.received_at, m.id) < (@after_at, @after_id)");
            command.Add("@after_at", StoreArguments.ToUnixMs(after.ReceivedAt));
            command.Add("@after_id", after.Id);
        }

        if (query.Filter.HasRecipientPredicate)
        {
            // By message id, always: without statistics SQLite probed a domain filter through spool_recipients_domain_state,
            // reading every recipient of the domain for each message walked (minutes for the largest domain).
            sql.Append(" AND EXISTS (SELECT 1 FROM spool_recipients AS r INDEXED BY spool_recipients_message_id WHERE r.message_id = m.id");
            AppendRecipientPredicates(sql, command, query.Filter);
            sql.Append(')');
        }

        return sql.Append(" ORDER BY m.received_at DESC, m.id DESC LIMIT @limit").ToString();
    }

    /// <summary>
    /// A search by state or bounce class (migration 0022): one arm per <see cref="SpoolAdminShared.SearchArms"/>, each an
    /// equality on spool_recipients_state or spool_recipients_final_class read in (received_at DESC, message_id DESC)
    /// order, each cut to the page; several arms are a UNION of those pages (duplicates dropped), cut to the page again.
    /// Migration 0022 back-filled received_at.
    /// </summary>
    internal static string RecipientWalkSql(SqliteCommand command, MessageListQuery query)
    {
        var filter = query.Filter;
        var shared = new StringBuilder(" AND r.received_at IS NOT NULL");
        AppendMessagePredicates(shared, command, filter, "r.received_at");
        if (query.After is { } after)
        {
            shared.Append(" AND (r.received_at, r.message_id) < (@after_at, @after_id)");
            command.Add("@after_at", StoreArguments.ToUnixMs(after.ReceivedAt));
            command.Add("@after_id", after.Id);
        }

        var statePredicate = new StringBuilder();
        var classPredicate = new StringBuilder();
        AppendRecipientPredicates(shared, command, filter, statePredicate, classPredicate);
        var source = filter.Sender is null ? "spool_recipients AS r" : "spool_recipients AS r JOIN spool_messages AS m ON m.id = r.message_id";
        // No state or class (a recipient, a small domain): one arm with the shared predicates only.
        var arms = SpoolAdminShared.WalksRecipients(filter) ? SpoolAdminShared.SearchArms(filter) : [new SearchArm(null, null)];
        var sql = new StringBuilder("SELECT m.id, m.sender, m.received_at, m.size, m.origin, m.completed_at FROM (");
        for (var i = 0; i < arms.Count; i++)
        {
            // Each arm its own ordered, limited subquery (a page's messages are among each arm's first page).
            var name = "@arm" + i.ToString(CultureInfo.InvariantCulture);
            sql.Append(i == 0 ? "" : " UNION ").Append(arms.Count > 1 ? "SELECT received_at, message_id FROM (" : "")
                .Append("SELECT DISTINCT r.received_at, r.message_id FROM ").Append(source).Append(" WHERE ");
            if (arms[i].State is { } state)
            {
                sql.Append("r.state = ").Append(name).Append(classPredicate);
                command.Add(name, (int)state);
            }
            else if (arms[i].BounceClass is null)
            {
                sql.Append('1');
            }
            else
            {
                // The literal state list is spool_recipients_final_class's predicate, which SQLite must see to use it.
                sql.Append("r.last_bounce_class = ").Append(name).Append(" AND r.state IN (3, 4, 5, 6)").Append(statePredicate);
                command.Add(name, arms[i].BounceClass!);
            }

            sql.Append(shared).Append(" ORDER BY r.received_at DESC, r.message_id DESC LIMIT @limit").Append(arms.Count > 1 ? ")" : "");
        }

        return sql.Append(arms.Count > 1 ? " ORDER BY 1 DESC, 2 DESC LIMIT @limit" : "").Append(
            """
            ) AS page
            JOIN spool_messages AS m ON m.id = page.message_id
            ORDER BY page.received_at DESC, page.message_id DESC
            """).ToString();
    }

    public async Task<AdminActionResult> ApplyAsync(AdminActionRequest request, CancellationToken cancellationToken)
    {
        SpoolAdminShared.Check(request);
        var nowMs = StoreArguments.ToUnixMs(request.Now);
        var changed = 0;
        var skipped = 0;
        var bounced = new List<AdminBouncedRecipient>();
        Guid? after = null;
        while (true)
        {
            var chunk = await database.WriteAsync(write => ApplyChunkAsync(write, request, after, nowMs), 0, cancellationToken);
            changed += chunk.Changed;
            skipped += chunk.Skipped;
            bounced.AddRange(chunk.Bounced);
            if (chunk.Last is null || chunk.Count < SpoolAdminLimits.ActionChunk)
            {
                break;
            }

            after = chunk.Last;
        }

        return await database.WriteAsync(async write =>
        {
            if (request.Action != AdminAction.Delete)
            {
                await using var count = write.CreateCommand("");
                var sql = new StringBuilder("SELECT count(*) FROM spool_recipients AS r JOIN spool_messages AS m ON m.id = r.message_id WHERE r.state = 1");
                AppendTarget(sql, count, request);
                count.CommandText = sql.ToString();
                skipped = Convert.ToInt32(await count.ExecuteScalarAsync(CancellationToken.None), CultureInfo.InvariantCulture);
            }

            await using var audit = write.CreateCommand(
                """
                INSERT INTO spool_admin_audit (at, actor, action, target, changed, skipped)
                VALUES (@now, @actor, @action, @target, @changed, @skipped)
                RETURNING id
                """);
            audit.Add("@now", nowMs);
            audit.Add("@actor", request.Actor);
            audit.Add("@action", SpoolAdminShared.Name(request.Action));
            audit.Add("@target", request.Target);
            audit.Add("@changed", changed);
            audit.Add("@skipped", skipped);
            var id = Convert.ToInt64(await audit.ExecuteScalarAsync(CancellationToken.None), CultureInfo.InvariantCulture);
            return new AdminActionResult { Action = request.Action, Changed = changed, SkippedInFlight = skipped, AuditId = id, Bounced = bounced };
        }, 0, cancellationToken);
    }

    private static async Task<ChunkResult> ApplyChunkAsync(SqliteWrite write, AdminActionRequest request, Guid? after, long nowMs)
    {
        var ids = new List<Guid>();
        await using (var select = write.CreateCommand(""))
        {
            var sql = new StringBuilder("SELECT DISTINCT r.message_id FROM spool_recipients AS r JOIN spool_messages AS m ON m.id = r.message_id WHERE 1");
            AppendTarget(sql, select, request);
            var source = SpoolAdminShared.SourceStates(request.Action);
            if (source.Count > 0)
            {
                sql.Append(" AND r.state IN (").Append(ValueList(select, "@src", source.Select(s => (object)(int)s))).Append(')');
            }

            if (after is { } a)
            {
                sql.Append(" AND r.message_id > @after");
                select.Add("@after", a);
            }

            sql.Append(" ORDER BY r.message_id LIMIT @chunk_size");
            select.Add("@chunk_size", SpoolAdminLimits.ActionChunk);
            select.CommandText = sql.ToString();
            await using var reader = await select.ExecuteReaderAsync(CancellationToken.None);
            while (await reader.ReadAsync(CancellationToken.None))
            {
                ids.Add(reader.GetGuid(0));
            }
        }

        if (ids.Count == 0)
        {
            return new ChunkResult(0, 0, 0, null, []);
        }

        await using var command = write.CreateCommand("");
        var chunk = IdList(command, "@c", ids);
        command.Add("@now", nowMs);
        var text = new StringBuilder();
        if (request.Action == AdminAction.Delete)
        {
            await using (var inFlight = write.CreateCommand(""))
            {
                inFlight.CommandText = $"SELECT count(DISTINCT message_id) FROM spool_recipients WHERE state = 1 AND message_id IN ({IdList(inFlight, "@c", ids)})";
                var skipped = Convert.ToInt32(await inFlight.ExecuteScalarAsync(CancellationToken.None), CultureInfo.InvariantCulture);
                text.Append(CultureInfo.InvariantCulture, $"DELETE FROM spool_messages WHERE id IN ({chunk}) AND NOT EXISTS (SELECT 1 FROM spool_recipients AS f WHERE f.message_id = spool_messages.id AND f.state = 1)");
                command.CommandText = text.ToString();
                var deleted = await command.ExecuteNonQueryAsync(CancellationToken.None);
                return new ChunkResult(deleted, skipped, ids.Count, ids[^1], []);
            }
        }

        text.Append(request.Action switch
        {
            AdminAction.Hold => "UPDATE spool_recipients AS r SET state = 7, updated_at = @now",
            AdminAction.Release => "UPDATE spool_recipients AS r SET state = 0, next_attempt_at = @now, updated_at = @now",
            AdminAction.Retry => "UPDATE spool_recipients AS r SET next_attempt_at = @now, updated_at = @now",
            _ => "UPDATE spool_recipients AS r SET state = 4, last_reply_code = NULL, last_enhanced_code = NULL, last_reply_text = @reason, updated_at = @now",
        });

        // The chunk's messages already match the filter's message members (sender, time), which never change.
        text.Append(CultureInfo.InvariantCulture, $" WHERE r.message_id IN ({chunk})");
        text.Append(" AND r.state IN (").Append(ValueList(command, "@src", SpoolAdminShared.SourceStates(request.Action).Select(s => (object)(int)s))).Append(')');
        if (request.Action == AdminAction.Retry)
        {
            text.Append(" AND r.next_attempt_at > @now");
        }

        AppendRecipientPredicates(text, command, request.Filter);
        if (request.Action != AdminAction.Bounce)
        {
            command.CommandText = text.ToString();
            return new ChunkResult(await command.ExecuteNonQueryAsync(CancellationToken.None), 0, ids.Count, ids[^1], []);
        }

        var reason = request.Reason ?? "bounced by an administrator";
        command.Add("@reason", reason);
        text.Append(" RETURNING id, message_id, address, notify, orcpt, last_remote_host");
        command.CommandText = text.ToString();
        var bounced = new List<AdminBouncedRecipient>();
        await using (var reader = await command.ExecuteReaderAsync(CancellationToken.None))
        {
            while (await reader.ReadAsync(CancellationToken.None))
            {
                bounced.Add(new AdminBouncedRecipient
                {
                    RecipientId = reader.GetInt64(0),
                    MessageId = reader.GetGuid(1),
                    Address = reader.GetString(2),
                    Notify = reader.NullableString(3),
                    OriginalRecipient = reader.NullableString(4),
                    LastRemoteHost = reader.NullableString(5),
                });
            }
        }

        await using (var history = write.CreateCommand("INSERT INTO spool_attempts (recipient_id, attempted_at, reply_text, state) VALUES (@id, @now, @reason, 4)"))
        {
            var id = history.Add("@id", 0L);
            history.Add("@now", nowMs);
            history.Add("@reason", reason);
            foreach (var b in bounced)
            {
                id.Value = b.RecipientId;
                await history.ExecuteNonQueryAsync(CancellationToken.None);
            }
        }

        await using (var complete = write.CreateCommand(""))
        {
            complete.CommandText =
                $"""
                UPDATE spool_messages SET completed_at = @now
                WHERE id IN ({IdList(complete, "@c", ids)}) AND completed_at IS NULL
                    AND NOT EXISTS (SELECT 1 FROM spool_recipients AS r WHERE r.message_id = spool_messages.id AND r.state NOT IN (3, 4, 5, 6))
                """;
            complete.Add("@now", nowMs);
            await complete.ExecuteNonQueryAsync(CancellationToken.None);
        }

        return new ChunkResult(bounced.Count, 0, ids.Count, ids[^1], bounced);
    }

    public async Task<QueueSummary> SummarizeAsync(DateTimeOffset now, int maxDomains, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = SummarySql;
        var buckets = SpoolAdminLimits.AgeBucketMinutes;
        for (var i = 0; i < buckets.Count; i++)
        {
            command.Add("@cut" + i.ToString(CultureInfo.InvariantCulture), StoreArguments.ToUnixMs(now.AddMinutes(-buckets[i])));
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

            groups.AddRange(SpoolAdminShared.SummaryGroups(reader.GetString(0), (RecipientState)reader.GetInt32(1), counts, reader.Timestamp(2 + counts.Length)));
        }

        return SpoolAdminShared.Summarize(now, maxDomains, groups);
    }

    public async Task<IReadOnlyList<AdminAuditEntry>> ListAuditAsync(long? beforeId, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, at, actor, action, target, changed, skipped FROM spool_admin_audit WHERE id < @before ORDER BY id DESC LIMIT @limit";
        command.Add("@before", beforeId ?? long.MaxValue);
        command.Add("@limit", Math.Clamp(limit, 1, SpoolAdminLimits.MaxPage));
        var entries = new List<AdminAuditEntry>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            entries.Add(new AdminAuditEntry
            {
                Id = reader.GetInt64(0),
                At = reader.Timestamp(1),
                Actor = reader.GetString(2),
                Action = reader.GetString(3),
                Target = reader.GetString(4),
                Changed = reader.GetInt32(5),
                SkippedInFlight = reader.GetInt32(6),
            });
        }

        return entries;
    }

    private sealed record ChunkResult(int Changed, int Skipped, int Count, Guid? Last, IReadOnlyList<AdminBouncedRecipient> Bounced);

    /// <summary>Parameters <paramref name="prefix"/>0, 1, … for the ids, and their list for an IN clause.</summary>
    private static string IdList(SqliteCommand command, string prefix, IEnumerable<Guid> ids) =>
        ValueList(command, prefix, ids.Select(id => (object)id));

    private static string ValueList(SqliteCommand command, string prefix, IEnumerable<object> values)
    {
        var names = new List<string>();
        foreach (var value in values)
        {
            var name = prefix + names.Count.ToString(CultureInfo.InvariantCulture);
            command.Add(name, value);
            names.Add(name);
        }

        return names.Count == 0 ? "NULL" : string.Join(", ", names);
    }

    private static void AppendTarget(StringBuilder sql, SqliteCommand command, AdminActionRequest request)
    {
        if (request.MessageIds is { } ids)
        {
            sql.Append(" AND r.message_id IN (").Append(IdList(command, "@id", ids)).Append(')');
        }

        AppendMessagePredicates(sql, command, request.Filter);
        AppendRecipientPredicates(sql, command, request.Filter);
    }

    /// <summary>The filter's message members; the time range on <paramref name="receivedAt"/> (the recipient's copy, too).</summary>
    private static void AppendMessagePredicates(StringBuilder sql, SqliteCommand command, MessageFilter filter, string receivedAt = "m.received_at")
    {
        if (filter.Sender is { } sender)
        {
            sql.Append(" AND m.sender = @sender COLLATE NOCASE");
            command.Add("@sender", sender);
        }

        if (filter.ReceivedFrom is { } from)
        {
            sql.Append(" AND ").Append(receivedAt).Append(" >= @received_from");
            command.Add("@received_from", StoreArguments.ToUnixMs(from));
        }

        if (filter.ReceivedTo is { } to)
        {
            sql.Append(" AND ").Append(receivedAt).Append(" < @received_to");
            command.Add("@received_to", StoreArguments.ToUnixMs(to));
        }
    }

    /// <summary>
    /// The filter's recipient members over r. The state and class predicates go to <paramref name="statePredicate"/> and
    /// <paramref name="classPredicate"/> when given: each arm of a search by state or class takes only the one it does
    /// not already imply (the same predicate twice makes the planner square its selectivity and misjudge the arm).
    /// </summary>
    private static void AppendRecipientPredicates(StringBuilder sql, SqliteCommand command, MessageFilter filter,
        StringBuilder? statePredicate = null, StringBuilder? classPredicate = null)
    {
        if (filter.Recipient is { } recipient)
        {
            sql.Append(" AND r.address = @recipient COLLATE NOCASE");
            command.Add("@recipient", recipient);
        }

        if (filter.Domain is { } domain)
        {
            sql.Append(" AND r.domain = @domain");
            command.Add("@domain", domain);
        }

        if (filter.States is { Count: > 0 } states)
        {
            (statePredicate ?? sql).Append(" AND r.state IN (").Append(ValueList(command, "@st", states.Select(s => (object)(int)s))).Append(')');
        }
        if (filter.BounceClasses is { Count: > 0 } classes)
        {
            (classPredicate ?? sql).Append(" AND r.last_bounce_class IN (").Append(ValueList(command, "@bc", classes)).Append(')');
        }
    }
}
