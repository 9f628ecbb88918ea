using MailMesh.Testing.Postgres;
using Npgsql;

namespace MailMesh.Storage.IntegrationTests;

public sealed class PostgresMigrationTests
{
    [Fact]
    public async Task Concurrent_migrators_on_an_empty_database_apply_each_migration_once()
    {
        await using var stores = await PostgresStores.CreateAsync(migrate: false);

        await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() => stores.OpenMigrator().MigrateAsync(CancellationToken.None))));

        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*), max(version) FROM public.mailmesh_migrations", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        // Each migration once (versions are reserved per branch, so they need not be contiguous).
        Assert.Equal(Migration.Load("Postgres").Count, reader.GetInt64(0));
        Assert.Equal(Postgres.PostgresSchemaMigrator.LatestVersion, reader.GetInt32(1));
    }

    [Fact]
    public async Task The_due_work_query_uses_the_partial_indexes()
    {
        await using var stores = await PostgresStores.CreateAsync();
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        var plan = await PlanAsync(connection, """
            SET enable_seqscan = off;
            EXPLAIN SELECT id FROM spool.recipients WHERE state IN (0, 2) AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT 10;
            """);
        Assert.Contains("recipients_due", plan, StringComparison.Ordinal);
    }

    /// <summary>
    /// Taking, renewing and recording a lease change only lease_id, lease_owner and lease_expires_at. No index of
    /// spool.recipients may read them (key, expression or predicate), and pages keep room for a new row version, or those
    /// updates cannot be heap-only (HOT): with recipients_lease on lease_expires_at each of them wrote an entry into all
    /// ten indexes (schema 25, issue 8).
    /// </summary>
    [Fact]
    public async Task No_index_of_the_recipients_reads_a_lease_column()
    {
        await using var stores = await PostgresStores.CreateAsync();
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            """
            SELECT i.indexrelid::regclass::text
            FROM pg_index AS i
            WHERE i.indrelid = 'spool.recipients'::regclass
                AND EXISTS (
                    SELECT 1 FROM pg_attribute AS a
                    WHERE a.attrelid = i.indrelid AND a.attname IN ('lease_id', 'lease_owner', 'lease_expires_at')
                        AND (a.attnum = ANY (i.indkey)
                            OR coalesce(pg_get_expr(i.indpred, i.indrelid), '') LIKE '%' || a.attname || '%'
                            OR coalesce(pg_get_expr(i.indexprs, i.indrelid), '') LIKE '%' || a.attname || '%'))
            """, connection);
        Assert.Empty(await ReadAllAsync(command));

        await using var fillfactor = new NpgsqlCommand("SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = 'spool.recipients'::regclass", connection);
        Assert.Equal("fillfactor=80", await fillfactor.ExecuteScalarAsync());
    }

    /// <summary>The claim finds live and expired leases through the in-flight recipients' index (schema 25), not by a scan of the table.</summary>
    [Fact]
    public async Task The_claim_reads_leases_through_the_in_flight_index()
    {
        await using var stores = await PostgresStores.CreateAsync();
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        var plan = await PlanAsync(connection, """
            SET enable_seqscan = off;
            EXPLAIN SELECT id FROM spool.recipients WHERE state = 1 AND lease_expires_at <= now() ORDER BY lease_expires_at LIMIT 10;
            """);
        Assert.Contains("recipients_in_flight", plan, StringComparison.Ordinal);
    }

    /// <summary>
    /// The claim reads every in-flight recipient, and only recipients_in_flight may serve that read (schema 26). With
    /// recipients_pending holding state 1 too, the planner took a bitmap of it by its second key column: its entries for
    /// recipients that left state 1 stay until vacuum, and under load the claim read 10,100 of them and 463 heap pages
    /// for 30 in-flight recipients (6 ms a claim in a paced distributed run, issue 8). Without the in-flight index, no
    /// other partial index can stand in for it.
    /// </summary>
    [Fact]
    public async Task The_claim_reads_the_in_flight_recipients_through_their_own_index_only()
    {
        await using var stores = await PostgresStores.CreateAsync();
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        await FillAsync(connection, messages: 2000, state: 3, then:
            """
            UPDATE spool.recipients SET state = 1, lease_id = gen_random_uuid(), lease_expires_at = now()
            WHERE id IN (SELECT id FROM spool.recipients LIMIT 10);
            """);

        Assert.Contains("recipients_in_flight", await ClaimPlanAsync(connection), StringComparison.Ordinal);

        await using var transaction = await connection.BeginTransactionAsync();
        await using (var drop = new NpgsqlCommand("DROP INDEX spool.recipients_in_flight", connection, transaction))
        {
            await drop.ExecuteNonQueryAsync();
        }

        Assert.DoesNotContain("recipients_pending", await ClaimPlanAsync(connection, transaction), StringComparison.Ordinal);
        await transaction.RollbackAsync();
    }

    /// <summary>
    /// The two claims of the spool's work queues run with plain index scans only (<see cref="Postgres.IndexScansOnly"/>):
    /// with statistics from a young spool the planner took bitmaps, which read the row of every dead index entry on every
    /// claim, or sequential scans of the whole table (a paced distributed run, issue 8).
    /// </summary>
    [Fact]
    public async Task The_claims_read_through_plain_index_scans_only()
    {
        await using var stores = await PostgresStores.CreateAsync();
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        await FillAsync(connection, messages: 50, state: 0, then:
            """
            INSERT INTO spool.results (lease_id, message_id, payload, created_at, next_try_at)
            SELECT gen_random_uuid(), id, '{}', now(), now() FROM spool.messages;
            """);

        await using var transaction = await connection.BeginTransactionAsync();
        foreach (var setting in Postgres.IndexScansOnly.Settings)
        {
            await using var set = new NpgsqlCommand(setting, connection, transaction);
            await set.ExecuteNonQueryAsync();
        }

        await using var results = new NpgsqlCommand("EXPLAIN " + Postgres.PostgresSpool.ClaimResultsSql, connection, transaction);
        results.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", DateTimeOffset.UtcNow));
        results.Parameters.Add(new NpgsqlParameter<int>("limit", 100));
        results.Parameters.Add(new NpgsqlParameter<TimeSpan>("retry_after", TimeSpan.FromSeconds(30)));
        foreach (var plan in new[] { await ClaimPlanAsync(connection, transaction), string.Join('\n', await ReadAllAsync(results)) })
        {
            Assert.DoesNotContain("Bitmap", plan, StringComparison.Ordinal);
            Assert.DoesNotContain("Seq Scan", plan, StringComparison.Ordinal);
        }
    }

    private static async Task<string> ClaimPlanAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction = null)
    {
        await using var command = new NpgsqlCommand("EXPLAIN " + Postgres.PostgresSpool.ClaimSql, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", DateTimeOffset.UtcNow));
        command.Parameters.Add(new NpgsqlParameter<int>("limit", 100));
        command.Parameters.Add(new NpgsqlParameter<int>("scan", 400));
        command.Parameters.Add(new NpgsqlParameter<long>("max_jobs", 1000));
        command.Parameters.Add(new NpgsqlParameter<long>("max_domain_jobs", 100));
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset>("lease_expires_at", DateTimeOffset.UtcNow.AddMinutes(5)));
        return string.Join('\n', await ReadAllAsync(command));
    }

    /// <summary>
    /// The lease statements (take, renew, record) find their rows by message id, whichever index the planner takes. With
    /// statistics that show no recipient in flight (as after an ANALYZE of a quiet spool) the planner takes the small
    /// in-flight index for them; keyed by domain, as schema 25 was first written, that read every in-flight recipient for
    /// each lease statement under load (issue 8).
    /// </summary>
    [Fact]
    public async Task Lease_statements_find_their_rows_by_message_id()
    {
        await using var stores = await PostgresStores.CreateAsync();
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        await FillAsync(connection, messages: 2000, state: 0);

        var plan = await PlanAsync(connection, """
            EXPLAIN UPDATE spool.recipients SET lease_owner = gen_random_uuid()
            WHERE message_id = '0197c5a0-0000-7000-8000-000000000001' AND lease_id = '0197c5a0-0000-7000-8000-000000000002' AND state = 1 AND lease_expires_at IS NOT NULL;
            """);
        Assert.Matches(@"Index Cond: \(message_id = ", plan);
    }

    /// <summary>
    /// The queue summary reads the pending recipients' index, and the in-flight ones through theirs (migration 0026),
    /// never the messages (migration 0020); 0022's state index, which also holds the pending range, made it group by
    /// hashing and took it over 300 ms at a million messages.
    /// </summary>
    [Fact]
    public async Task The_queue_summary_reads_only_the_pending_and_in_flight_indexes()
    {
        await using var stores = await PostgresStores.CreateAsync();
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        await using (var off = new NpgsqlCommand("SET enable_seqscan = off", connection))
        {
            await off.ExecuteNonQueryAsync();
        }

        await using var command = new NpgsqlCommand("EXPLAIN " + SpoolAdminShared.SummarySql("spool.recipients", inFlightApart: true), connection);
        for (var i = 0; i < SpoolAdminLimits.AgeBucketMinutes.Count; i++)
        {
            command.Parameters.AddWithValue("cut" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), DateTimeOffset.UtcNow.AddMinutes(-SpoolAdminLimits.AgeBucketMinutes[i]));
        }

        var plan = string.Join('\n', await ReadAllAsync(command));
        Assert.Contains("recipients_pending", plan, StringComparison.Ordinal);
        Assert.Contains("recipients_in_flight", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("messages", plan, StringComparison.Ordinal);
    }

    /// <summary>Bodies are compressed with LZ4, not pglz (issue 8: a 100 KB body cost the PostgreSQL backend 5× the CPU).</summary>
    [Fact]
    public async Task Message_bodies_are_compressed_with_lz4()
    {
        await using var stores = await PostgresStores.CreateAsync();
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            """
            SELECT attrelid::regclass::text, attcompression::text FROM pg_attribute
            WHERE attname = 'content' AND attrelid IN ('spool.messages'::regclass, 'mailbox.bodies'::regclass)
            ORDER BY 1
            """, connection);
        var columns = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                columns.Add(reader.GetString(0) + "=" + reader.GetString(1));
            }
        }

        Assert.Equal(["mailbox.bodies=l", "spool.messages=l"], columns);

        // A compressible 100 KB body goes in compressed and comes back whole.
        var body = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat(new string('x', 76) + "\r\n", 1300)));
        var id = Guid.NewGuid();
        Assert.True(await stores.Spool.StoreAsync(new NewMessage
        {
            Id = id,
            Sender = "a@example.org",
            Recipients = [new NewRecipient { Address = "b@example.com" }],
            Content = body,
            ReceivedAt = DateTimeOffset.FromUnixTimeMilliseconds(1_900_000_000_000),
        }, CancellationToken.None));
        Assert.Equal(body, (await stores.Spool.GetMessageAsync(id, CancellationToken.None))!.Content.ToArray());
        await using var method = new NpgsqlCommand("SELECT pg_column_compression(content) FROM spool.messages WHERE id = @id", connection);
        method.Parameters.AddWithValue("id", id);
        Assert.Equal("lz4", (string?)await method.ExecuteScalarAsync());
    }

    /// <summary>
    /// Migration 0020 on a spool written before it: pending recipients get their message's received time (the queue
    /// summary reads it from the recipient row), final ones keep NULL.
    /// </summary>
    [Fact]
    public async Task Migration_20_backfills_the_received_time_of_pending_recipients()
    {
        await using var stores = await PostgresStores.CreateAsync(migrate: false);
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        await ApplyMigrationsAsync(connection, m => m.Version < 20);

        var receivedAt = new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);
        await using (var old = new NpgsqlCommand(
            """
            INSERT INTO spool.messages (id, sender, content, size, received_at, origin, body_type, smtputf8, requiretls)
            VALUES (@id, 's@example.org', '\x00'::bytea, 1, @at, 0, 0, false, false);
            INSERT INTO spool.recipients (message_id, address, domain, state, next_attempt_at, updated_at)
            VALUES (@id, 'a@old.test', 'old.test', 2, @at, @at), (@id, 'b@old.test', 'old.test', 3, @at, @at);
            """, connection))
        {
            old.Parameters.AddWithValue("id", Guid.NewGuid());
            old.Parameters.AddWithValue("at", receivedAt);
            await old.ExecuteNonQueryAsync();
        }

        await stores.Migrator.MigrateAsync(CancellationToken.None);

        var summary = await stores.SpoolAdmin.SummarizeAsync(receivedAt.AddHours(1), 10, CancellationToken.None);
        Assert.Equal(1, summary.Total.Total);
        Assert.Equal(receivedAt, summary.Total.OldestReceivedAt);
        // 0022's back-fill (run by the migrator after 0022) gives the final one its received time too.
        await using var final = new NpgsqlCommand("SELECT count(*) FROM spool.recipients WHERE received_at IS NULL", connection);
        Assert.Equal(0L, (long)(await final.ExecuteScalarAsync())!);
    }

    /// <summary>
    /// Migration 0022 on a spool with recipients that were final before 0020 (received_at NULL): until the back-fill has
    /// run, a search by state and class still finds them (the old statement); the migrator's back-fill then fills them
    /// in batches over an id range wider than one batch, deletes its bookkeeping row, and the search, now walking the
    /// recipients, finds them in their place among newer mail.
    /// </summary>
    [Fact]
    public async Task Migration_22_backfills_old_final_recipients_in_batches_and_search_finds_them_throughout()
    {
        await using var stores = await PostgresStores.CreateAsync(migrate: false);
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        await ApplyMigrationsAsync(connection, m => m.Version < 22);

        // Final before 0020: no received_at. Ids far apart, so the back-fill takes several batches (and above the ones the
        // identity hands out, which the newer message below gets).
        var t0 = new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);
        Guid[] old = [Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid()];
        for (var i = 0; i < old.Length; i++)
        {
            await using var insert = new NpgsqlCommand(
                """
                INSERT INTO spool.messages (id, sender, content, size, received_at, origin, body_type, smtputf8, requiretls, completed_at)
                VALUES (@id, 's@example.org', '\x00'::bytea, 1, @at, 0, 0, false, false, @at);
                INSERT INTO spool.recipients (id, message_id, address, domain, state, next_attempt_at, updated_at, last_bounce_class)
                OVERRIDING SYSTEM VALUE
                VALUES (@rid, @id, 'a@old.test', 'old.test', @state, @at, @at, @class);
                """, connection);
            insert.Parameters.AddWithValue("id", old[i]);
            insert.Parameters.AddWithValue("at", t0.AddMinutes(i * 2));
            insert.Parameters.AddWithValue("rid", 1_000_000L + (i * (Postgres.PostgresBackfill.BatchIds + 3L)));
            insert.Parameters.AddWithValue("state", (short)(i == 1 ? 3 : 4));
            insert.Parameters.AddWithValue("class", i == 1 ? (object)DBNull.Value : "InvalidRecipient");
            await insert.ExecuteNonQueryAsync();
        }

        // 0022's script alone, as if the migrator had stopped before its back-fill.
        await ApplyMigrationsAsync(connection, m => m.Version == 22);
        var bounced = new MessageFilter { States = [RecipientState.Bounced], BounceClasses = ["InvalidRecipient"] };
        Assert.Equal([old[2], old[0]], (await stores.SpoolAdmin.ListMessagesAsync(new MessageListQuery { Filter = bounced }, CancellationToken.None)).Items.Select(m => m.Id));

        // Newer mail, bounced between the two old ones' times... and after them.
        var newer = await BouncedMail.StoreAsync(stores.Spool, t0.AddMinutes(1), t0.AddMinutes(10));

        await stores.Migrator.MigrateAsync(CancellationToken.None);

        await using (var check = new NpgsqlCommand(
            "SELECT (SELECT count(*) FROM spool.recipients WHERE received_at IS NULL), (SELECT count(*) FROM spool.backfills)", connection))
        await using (var reader = await check.ExecuteReaderAsync())
        {
            Assert.True(await reader.ReadAsync());
            Assert.Equal(0L, reader.GetInt64(0));
            Assert.Equal(0L, reader.GetInt64(1));
        }

        Assert.Equal([old[2], newer, old[0]], (await stores.SpoolAdmin.ListMessagesAsync(new MessageListQuery { Filter = bounced }, CancellationToken.None)).Items.Select(m => m.Id));
        var first = await stores.SpoolAdmin.ListMessagesAsync(new MessageListQuery { Filter = bounced, Limit = 1 }, CancellationToken.None);
        var rest = await stores.SpoolAdmin.ListMessagesAsync(new MessageListQuery { Filter = bounced, Limit = 5, After = first.Next }, CancellationToken.None);
        Assert.Equal([newer, old[0]], rest.Items.Select(m => m.Id));
        Assert.Equal([old[1]], (await stores.SpoolAdmin.ListMessagesAsync(new MessageListQuery { Filter = new MessageFilter { States = [RecipientState.Delivered] } }, CancellationToken.None)).Items.Select(m => m.Id));
    }

    /// <summary>A search by state reads recipients_state newest first and stops at the page: no sort of every match.</summary>
    [Fact]
    public async Task A_search_by_state_and_class_walks_the_indexes_in_order()
    {
        await using var stores = await PostgresStores.CreateAsync();
        await using var connection = new NpgsqlConnection(stores.ConnectionString);
        await connection.OpenAsync();
        await using (var off = new NpgsqlCommand("SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off", connection))
        {
            await off.ExecuteNonQueryAsync();
        }

        foreach (var (filter, index) in new[]
        {
            (new MessageFilter { States = [RecipientState.Bounced, RecipientState.Deferred], BounceClasses = ["InvalidRecipient"] }, "recipients_final_class"),
            (new MessageFilter { States = [RecipientState.Bounced, RecipientState.Expired] }, "recipients_state"),
        })
        {
            await using var command = new NpgsqlCommand { Connection = connection };
            command.CommandText = "EXPLAIN " + Postgres.PostgresSpoolAdmin.RecipientWalkSql(command, new MessageListQuery { Filter = filter });
            command.Parameters.Add(new NpgsqlParameter<int>("limit", 51));
            var plan = string.Join('\n', await ReadAllAsync(command));
            Assert.Contains(index, plan, StringComparison.Ordinal);
            Assert.Contains("Merge Append", plan, StringComparison.Ordinal);

            // The only sort is the final one of the page's 51 rows read back from the CTE.
            Assert.Equal(1, plan.Split('\n').Count(line => line.TrimStart().StartsWith("Sort  (", StringComparison.Ordinal) || line.Contains("->  Sort  (", StringComparison.Ordinal)));
        }
    }

    private static async Task ApplyMigrationsAsync(NpgsqlConnection connection, Func<Migration, bool> which)
    {
        await using (var create = new NpgsqlCommand(
            "CREATE TABLE IF NOT EXISTS public.mailmesh_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
            connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        foreach (var migration in Migration.Load("Postgres").Where(which))
        {
            await using var apply = new NpgsqlCommand(migration.Sql + ";INSERT INTO public.mailmesh_migrations (version, name, checksum) VALUES (@v, @n, @c)", connection);
            apply.Parameters.AddWithValue("v", migration.Version);
            apply.Parameters.AddWithValue("n", migration.Name);
            apply.Parameters.AddWithValue("c", migration.Checksum);
            await apply.ExecuteNonQueryAsync();
        }
    }

    /// <summary>
    /// <paramref name="messages"/> messages with one recipient each in <paramref name="state"/>, then the statements in
    /// <paramref name="then"/>, then fresh statistics, as the planner would find them.
    /// </summary>
    private static async Task FillAsync(NpgsqlConnection connection, int messages, int state, string then = "")
    {
        await using var fill = new NpgsqlCommand(
            $"""
            INSERT INTO spool.messages (id, sender, content, size, received_at, origin, body_type, smtputf8, requiretls)
            SELECT gen_random_uuid(), 'a@example.com', '\x00', 1, now(), 0, 0, false, false FROM generate_series(1, {messages});
            INSERT INTO spool.recipients (message_id, address, domain, state, next_attempt_at, received_at, updated_at)
            SELECT id, 'b@example.net', 'example.net', {state}, now(), now(), now() FROM spool.messages;
            {then}
            ANALYZE spool.recipients;
            ANALYZE spool.results;
            """, connection);
        await fill.ExecuteNonQueryAsync();
    }

    /// <summary>The plan EXPLAIN prints for <paramref name="sql"/> (which may set planner options first), as one text.</summary>
    private static async Task<string> PlanAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return string.Join('\n', await ReadAllAsync(command));
    }

    private static async Task<List<string>> ReadAllAsync(NpgsqlCommand command)
    {
        var lines = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        do
        {
            while (await reader.ReadAsync())
            {
                lines.Add(reader.GetString(0));
            }
        }
        while (await reader.NextResultAsync());

        return lines;
    }
}

public sealed class SqliteMigrationTests
{
    [Fact]
    public async Task Concurrent_migrators_on_a_new_file_apply_each_migration_once()
    {
        await using var stores = await SqliteStores.CreateAsync(migrate: false);

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => stores.OpenMigrator().MigrateAsync(CancellationToken.None))));

        var spool = stores.OpenSpool();
        Assert.Equal(0, (await spool.CountByStateAsync(CancellationToken.None))[RecipientState.Queued]);
    }

    [Fact]
    public async Task The_due_work_query_uses_the_partial_indexes()
    {
        await using var stores = await SqliteStores.CreateAsync();
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={stores.Path}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText =
            """
            EXPLAIN QUERY PLAN
            SELECT id FROM spool_recipients WHERE state IN (0, 2) AND next_attempt_at <= 5 ORDER BY next_attempt_at LIMIT 10
            """;
        var plan = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                plan.Add(reader.GetString(3));
            }
        }

        Assert.Contains(plan, line => line.Contains("spool_recipients_due", StringComparison.Ordinal));
    }

    /// <summary>Migration 0020 on a SQLite spool written before it (see the PostgreSQL test).</summary>
    [Fact]
    public async Task Migration_20_backfills_the_received_time_of_pending_recipients()
    {
        await using var stores = await SqliteStores.CreateAsync(migrate: false);
        var receivedAt = new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);
        await using (var connection = await OpenMigratedBeforeAsync(stores, 20))
        {
            await using var old = connection.CreateCommand();
            old.CommandText =
                """
                INSERT INTO spool_messages (id, sender, content, size, received_at, origin, body_type, smtputf8, requiretls)
                VALUES (@id, 's@example.org', x'00', 1, @at, 0, 0, 0, 0);
                INSERT INTO spool_recipients (message_id, address, domain, state, next_attempt_at, updated_at)
                VALUES (@id, 'a@old.test', 'old.test', 2, @at, @at), (@id, 'b@old.test', 'old.test', 3, @at, @at);
                """;
            old.Parameters.AddWithValue("@id", Guid.NewGuid().ToByteArray());
            old.Parameters.AddWithValue("@at", receivedAt.ToUnixTimeMilliseconds());
            await old.ExecuteNonQueryAsync();
        }

        await stores.Migrator.MigrateAsync(CancellationToken.None);

        var summary = await stores.SpoolAdmin.SummarizeAsync(receivedAt.AddHours(1), 10, CancellationToken.None);
        Assert.Equal(1, summary.Total.Total);
        Assert.Equal(receivedAt, summary.Total.OldestReceivedAt);
    }

    /// <summary>Migration 0022 on a SQLite spool with recipients final before 0020: filled, and found by a search by state and class.</summary>
    [Fact]
    public async Task Migration_22_backfills_old_final_recipients_and_search_finds_them()
    {
        await using var stores = await SqliteStores.CreateAsync(migrate: false);
        var t0 = new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);
        Guid[] old = [Guid.NewGuid(), Guid.NewGuid()];
        await using (var connection = await OpenMigratedBeforeAsync(stores, 22))
        {
            for (var i = 0; i < old.Length; i++)
            {
                await using var insert = connection.CreateCommand();
                insert.CommandText =
                    """
                    INSERT INTO spool_messages (id, sender, content, size, received_at, origin, body_type, smtputf8, requiretls, completed_at)
                    VALUES (@id, 's@example.org', x'00', 1, @at, 0, 0, 0, 0, @at);
                    INSERT INTO spool_recipients (message_id, address, domain, state, next_attempt_at, updated_at, last_bounce_class)
                    VALUES (@id, 'a@old.test', 'old.test', 4, @at, @at, 'InvalidRecipient');
                    """;
                insert.Parameters.AddWithValue("@id", old[i].ToByteArray());
                insert.Parameters.AddWithValue("@at", t0.AddMinutes(i * 2).ToUnixTimeMilliseconds());
                await insert.ExecuteNonQueryAsync();
            }
        }

        await stores.Migrator.MigrateAsync(CancellationToken.None);
        var newer = await BouncedMail.StoreAsync(stores.Spool, t0.AddMinutes(1), t0.AddMinutes(10));

        var bounced = new MessageFilter { States = [RecipientState.Bounced], BounceClasses = ["InvalidRecipient"] };
        Assert.Equal([old[1], newer, old[0]], (await stores.SpoolAdmin.ListMessagesAsync(new MessageListQuery { Filter = bounced }, CancellationToken.None)).Items.Select(m => m.Id));
        Assert.Equal([old[1], newer, old[0]], (await stores.SpoolAdmin.ListMessagesAsync(new MessageListQuery { Filter = new MessageFilter { BounceClasses = ["InvalidRecipient"] } }, CancellationToken.None)).Items.Select(m => m.Id));
    }

    /// <summary>Migration 0024 moves the contents of a spool written before it into spool_contents, byte for byte; the
    /// moved message is delivered from there, and purging it deletes its content too.</summary>
    [Fact]
    public async Task Migration_24_moves_contents_out_of_the_message_rows_and_purge_deletes_them()
    {
        await using var stores = await SqliteStores.CreateAsync(migrate: false);
        var t0 = new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);
        var id = Guid.NewGuid();
        var content = new byte[200_000];
        new Random(24).NextBytes(content);
        "Subject: old\r\n\r\n"u8.CopyTo(content);
        await using (var connection = await OpenMigratedBeforeAsync(stores, 24))
        {
            await using var insert = connection.CreateCommand();
            insert.CommandText =
                """
                INSERT INTO spool_messages (id, sender, content, size, received_at, origin, body_type, smtputf8, requiretls)
                VALUES (@id, 's@example.org', @content, @size, @at, 0, 0, 0, 0);
                INSERT INTO spool_recipients (message_id, address, domain, state, next_attempt_at, updated_at, received_at)
                VALUES (@id, 'a@old.test', 'old.test', 0, @at, @at, @at);
                """;
            insert.Parameters.AddWithValue("@id", id); // as the spool binds it
            insert.Parameters.AddWithValue("@content", content);
            insert.Parameters.AddWithValue("@size", content.Length);
            insert.Parameters.AddWithValue("@at", t0.ToUnixTimeMilliseconds());
            await insert.ExecuteNonQueryAsync();
        }

        await stores.Migrator.MigrateAsync(CancellationToken.None);
        Assert.Equal(content, (await stores.Spool.GetMessageAsync(id, CancellationToken.None))!.Content.ToArray());
        var job = Assert.Single(await stores.Spool.ClaimDueAsync(t0, 10, TimeSpan.FromMinutes(5), CancellationToken.None));
        var taken = (await stores.Spool.StartAttemptAsync(id, job.LeaseId, Guid.NewGuid(), t0.AddMinutes(5), CancellationToken.None))!;
        Assert.Null(taken.DetachedContentLength);
        Assert.Equal(content, taken.Content.ToArray());
        using (var copy = new MemoryStream())
        {
            Assert.True(await stores.Spool.CopyContentAsync(id, copy, CancellationToken.None));
            Assert.Equal(content, copy.ToArray());
        }

        var delivered = new RecipientUpdate { RecipientId = job.Recipients[0].RecipientId, State = RecipientState.Delivered, AttemptedAt = t0, ReplyCode = 250 };
        Assert.Single(await stores.Spool.CompleteAttemptAsync(id, job.LeaseId, [delivered], CancellationToken.None));
        Assert.Equal(1, await stores.Spool.PurgeCompletedAsync(t0.AddMinutes(1), CancellationToken.None));
        await using var check = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={stores.Path};Pooling=False");
        await check.OpenAsync();
        await using var count = check.CreateCommand();
        count.CommandText = "SELECT (SELECT count(*) FROM spool_contents) + (SELECT count(*) FROM pragma_table_info('spool_messages') WHERE name = 'content')";
        Assert.Equal(0L, await count.ExecuteScalarAsync());
    }

    /// <summary>A new spool file with the migrations before <paramref name="version"/> applied by hand, as an older MailMesh left it.</summary>
    private static async Task<Microsoft.Data.Sqlite.SqliteConnection> OpenMigratedBeforeAsync(SqliteStores stores, int version)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(stores.Path)!);
        var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={stores.Path};Pooling=False");
        await connection.OpenAsync();
        await using var create = connection.CreateCommand();
        create.CommandText = "CREATE TABLE mailmesh_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)";
        await create.ExecuteNonQueryAsync();
        foreach (var migration in Migration.Load("Sqlite").Where(m => m.Version < version))
        {
            await using var apply = connection.CreateCommand();
            apply.CommandText = migration.Sql + ";INSERT INTO mailmesh_migrations (version, name, checksum, applied_at) VALUES (@v, @n, @c, 0)";
            apply.Parameters.AddWithValue("@v", migration.Version);
            apply.Parameters.AddWithValue("@n", migration.Name);
            apply.Parameters.AddWithValue("@c", migration.Checksum);
            await apply.ExecuteNonQueryAsync();
        }

        return connection;
    }

    /// <summary>SQLite's queue summary reads the pending index (0020, kept by 0022), not the state index, and no message.</summary>
    [Fact]
    public async Task The_queue_summary_reads_only_the_pending_index_on_sqlite_too()
    {
        await using var stores = await SqliteStores.CreateAsync();
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={stores.Path}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "EXPLAIN QUERY PLAN " + SpoolAdminShared.SummarySql("spool_recipients", inFlightApart: false);
        for (var i = 0; i < SpoolAdminLimits.AgeBucketMinutes.Count; i++)
        {
            command.Parameters.AddWithValue("@cut" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), DateTimeOffset.UtcNow.AddMinutes(-SpoolAdminLimits.AgeBucketMinutes[i]).ToUnixTimeMilliseconds());
        }

        var plan = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                plan.Add(reader.GetString(3));
            }
        }

        Assert.Contains(plan, line => line.Contains("spool_recipients_pending", StringComparison.Ordinal));
        Assert.DoesNotContain(plan, line => line.Contains("spool_messages", StringComparison.Ordinal));
    }

    /// <summary>SQLite reads a search by state or class from the new indexes in order, stopping at the page.</summary>
    [Fact]
    public async Task A_search_by_state_and_class_walks_the_indexes_in_order()
    {
        await using var stores = await SqliteStores.CreateAsync();
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={stores.Path}");
        await connection.OpenAsync();
        foreach (var (filter, index) in new[]
        {
            (new MessageFilter { States = [RecipientState.Bounced], BounceClasses = ["InvalidRecipient"] }, "spool_recipients_final_class"),
            (new MessageFilter { States = [RecipientState.Bounced, RecipientState.Expired] }, "spool_recipients_state"),
        })
        {
            await using var command = connection.CreateCommand();
            command.CommandText = "EXPLAIN QUERY PLAN " + Sqlite.SqliteSpoolAdmin.RecipientWalkSql(command, new MessageListQuery { Filter = filter });
            command.Parameters.AddWithValue("@limit", 51);
            var plan = new List<string>();
            await using (var reader = await command.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    plan.Add(reader.GetString(3));
                }
            }

            // Each arm reads its covering index in order and de-duplicates as it goes; the only sorts (if any) are of an
            // arm's page (for the UNION's merge) and of the page read back: 51 rows each.
            var arms = SpoolAdminShared.SearchArms(filter).Count;
            Assert.Contains(plan, line => line.Contains("COVERING INDEX " + index, StringComparison.Ordinal));
            Assert.DoesNotContain(plan, line => line.Contains("FOR DISTINCT", StringComparison.Ordinal));
            Assert.True(plan.Count(line => line.Contains("TEMP B-TREE FOR ORDER BY", StringComparison.Ordinal)) <= (arms > 1 ? arms + 1 : 1), string.Join('\n', plan));
        }
    }
}

public sealed class SqliteDurabilityTests
{
    [Fact]
    public async Task A_stored_message_is_read_back_by_a_new_spool_on_the_same_file()
    {
        await using var stores = await SqliteStores.CreateAsync();
        var content = new byte[] { 0x53, 0x3A, 0x20, 0xFF, 0x00, 0x80, 0x0D, 0x0A };
        var message = new NewMessage
        {
            Id = Guid.NewGuid(),
            Sender = "a@example.org",
            Recipients = [new NewRecipient { Address = "b@example.com" }],
            Content = content,
            ReceivedAt = DateTimeOffset.FromUnixTimeMilliseconds(1_900_000_000_000),
        };

        var first = stores.NewDatabase();
        Assert.True(await new Sqlite.SqliteSpool(first).StoreAsync(message, CancellationToken.None));
        first.Dispose();

        using var second = stores.NewDatabase();
        var reopened = new Sqlite.SqliteSpool(second);
        var stored = await reopened.GetMessageAsync(message.Id, CancellationToken.None);
        Assert.Equal(content, stored!.Content.ToArray());
        Assert.Equal(message.ReceivedAt, stored.ReceivedAt);
        var job = Assert.Single(await reopened.ClaimDueAsync(message.ReceivedAt, 10, TimeSpan.FromMinutes(1), CancellationToken.None));
        Assert.Equal("b@example.com", Assert.Single(job.Recipients).Address);
    }

    /// <summary>
    /// A new file gets 16 KiB pages (a 100 KB body is 7 page reads and writes, not 25: issue 8's 100 KB figures); a file
    /// made with 4 KiB pages by an earlier version keeps them and stays usable.
    /// </summary>
    [Fact]
    public async Task A_new_file_has_16_KiB_pages_and_an_existing_file_keeps_its_own()
    {
        await using var stores = await SqliteStores.CreateAsync();
        Assert.Equal(Sqlite.SqliteDatabase.PageSize, await PageSizeAsync(stores.Path));

        var old = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(stores.Path)!, "old.db");
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + old + ";Pooling=False"))
        {
            await connection.OpenAsync();
            await using var create = connection.CreateCommand();
            create.CommandText = "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE earlier (x INTEGER)";
            await create.ExecuteNonQueryAsync();
        }

        using var database = new Sqlite.SqliteDatabase(old);
        await new Sqlite.SqliteSchemaMigrator(database, Microsoft.Extensions.Logging.Abstractions.NullLogger<Sqlite.SqliteSchemaMigrator>.Instance).MigrateAsync(CancellationToken.None);
        var spool = new Sqlite.SqliteSpool(database);
        var body = new byte[100 * 1024];
        Random.Shared.NextBytes(body);
        var id = Guid.NewGuid();
        Assert.True(await spool.StoreAsync(new NewMessage
        {
            Id = id,
            Sender = "a@example.org",
            Recipients = [new NewRecipient { Address = "b@example.com" }],
            Content = body,
            ReceivedAt = DateTimeOffset.FromUnixTimeMilliseconds(1_900_000_000_000),
        }, CancellationToken.None));
        Assert.Equal(body, (await spool.GetMessageAsync(id, CancellationToken.None))!.Content.ToArray());
        Assert.Equal(4096, await PageSizeAsync(old));
    }

    private static async Task<long> PageSizeAsync(string path)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path + ";Mode=ReadOnly;Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA page_size";
        return (long)(await command.ExecuteScalarAsync())!;
    }
}

/// <summary>
/// 250 means safe on PostgreSQL: every connection the stores get from <see cref="Postgres.PostgresDataSource"/> commits
/// synchronously, whatever the server's, database's or role's default, without a statement per transaction (issue 8).
/// </summary>
public sealed class PostgresDurabilityTests
{
    [Fact]
    public async Task The_stores_connections_commit_synchronously_even_where_the_database_default_is_off()
    {
        await using var database = await TestDatabase.CreateAsync();
        await using (var owner = new NpgsqlConnection(database.ConnectionString))
        {
            await owner.OpenAsync();
            await using var off = new NpgsqlCommand($"ALTER DATABASE \"{database.Name}\" SET synchronous_commit = off", owner);
            await off.ExecuteNonQueryAsync();
        }

        var plain = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Pooling = false }.ConnectionString;
        Assert.Equal("off", await SynchronousCommitAsync(NpgsqlDataSource.Create(plain)));
        Assert.Equal("on", await SynchronousCommitAsync(Postgres.PostgresDataSource.Create(plain)));

        // An operator who names the setting in the connection string's Options keeps it.
        Assert.Equal("remote_write", await SynchronousCommitAsync(Postgres.PostgresDataSource.Create(plain + ";Options=-c synchronous_commit=remote_write")));
    }

    private static async Task<string?> SynchronousCommitAsync(NpgsqlDataSource dataSource)
    {
        await using (dataSource)
        {
            await using var command = dataSource.CreateCommand("SHOW synchronous_commit");
            return (string?)await command.ExecuteScalarAsync();
        }
    }
}

/// <summary>Mail written by the current spool, for the migration tests' old rows to sit among.</summary>
internal static class BouncedMail
{
    /// <summary>Stores a message received at <paramref name="receivedAt"/> and bounces its one recipient (InvalidRecipient) at <paramref name="at"/>.</summary>
    public static async Task<Guid> StoreAsync(ISpool spool, DateTimeOffset receivedAt, DateTimeOffset at)
    {
        var id = Guid.NewGuid();
        Assert.True(await spool.StoreAsync(new NewMessage
        {
            Id = id,
            Sender = "s@example.org",
            Recipients = [new NewRecipient { Address = "b@new.test" }],
            Content = "Subject: hi\r\n\r\nbody\r\n"u8.ToArray(),
            ReceivedAt = receivedAt,
        }, CancellationToken.None));
        var job = Assert.Single(await spool.ClaimDueAsync(at, 10, TimeSpan.FromMinutes(5), CancellationToken.None));
        await spool.CompleteAttemptAsync(job.MessageId, job.LeaseId,
            [new RecipientUpdate { RecipientId = job.Recipients[0].RecipientId, State = RecipientState.Bounced, AttemptedAt = at, ReplyCode = 550, BounceClass = "InvalidRecipient" }],
            CancellationToken.None);
        return id;
    }
}
