using MailMesh.Storage.Sqlite;
using Microsoft.Data.Sqlite;

namespace MailMesh.Storage.IntegrationTests;

/// <summary>
/// Group commit in <see cref="SqliteDatabase"/>. To put chosen operations into one batch deterministically, a test
/// first holds the writer with an operation that waits on a gate, queues the operations, then opens the gate: the
/// next batch is exactly what was queued meanwhile (fewer than <see cref="SqliteDatabase.MaxBatchOperations"/>).
/// </summary>
public sealed class SqliteGroupCommitTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private SqliteStores _stores = null!;
    private SqliteDatabase _database = null!;
    private SqliteSpool _spool = null!;

    private static CancellationToken Ct => CancellationToken.None;

    public async Task InitializeAsync()
    {
        _stores = await SqliteStores.CreateAsync();
        _database = _stores.NewDatabase();
        _spool = new SqliteSpool(_database);
    }

    public async Task DisposeAsync() => await _stores.DisposeAsync();

    private static NewMessage Message(string sender = "sender@example.org") => new()
    {
        Id = Guid.NewGuid(),
        Sender = sender,
        Recipients = [new NewRecipient { Address = "rcpt@example.com" }, new NewRecipient { Address = "other@example.net" }],
        Content = "Subject: hi\r\n\r\nbody\r\n"u8.ToArray(),
        ReceivedAt = T0,
    };

    [Fact]
    public async Task Five_hundred_concurrent_stores_are_all_durable_and_read_back_by_a_new_spool_on_the_same_file()
    {
        var messages = Enumerable.Range(0, 500).Select(i => Message($"sender{i}@example.org") with
        {
            Content = System.Text.Encoding.ASCII.GetBytes($"Subject: {i}\r\n\r\n{new string('x', i)}\r\n"),
        }).ToList();

        var stored = await Task.WhenAll(messages.Select(m => Task.Run(() => _spool.StoreAsync(m, Ct)))).WaitAsync(Timeout);

        Assert.All(stored, Assert.True);
        Assert.InRange(_database.Commits, 1, 500);

        // A second SqliteDatabase is what a restarted process would open: it sees only what was committed.
        await _database.DisposeAsync();
        await using var reopened = _stores.NewDatabase();
        var spool = new SqliteSpool(reopened);
        foreach (var message in messages)
        {
            var back = await spool.GetMessageAsync(message.Id, Ct);
            Assert.NotNull(back);
            Assert.Equal(message.Sender, back.Sender);
            Assert.Equal(message.Content.ToArray(), back.Content.ToArray());
        }

        var counts = await spool.CountByStateAsync(Ct);
        Assert.Equal(1000, counts[RecipientState.Queued]);
        var jobs = await spool.ClaimDueAsync(T0, 2000, TimeSpan.FromMinutes(5), Ct);
        Assert.Equal(1000, jobs.Sum(j => j.Recipients.Count));
    }

    [Fact]
    public async Task A_failing_operation_rolls_back_only_itself_and_the_rest_of_its_batch_commits()
    {
        var policy = new SqlitePolicyStore(_database);
        await using var gate = await WriterGate.HoldAsync(_database);
        var commitsBefore = _database.Commits;

        var first = Message();
        var second = Message();
        var storeFirst = _spool.StoreAsync(first, Ct);
        var failing = _database.WriteAsync<int>(async write =>
        {
            // Writes something first: the rollback to its savepoint must undo it.
            await using var command = write.CreateCommand(
                "INSERT INTO policy_suppressions (address, reason, created_at) VALUES ('doomed@example.com', 'x', 0)");
            await command.ExecuteNonQueryAsync();
            throw new InvalidOperationException("operation failed");
        }, 0, Ct);
        var suppress = policy.AddSuppressionAsync(new Suppression { Address = "kept@example.com", Reason = "bounce", CreatedAt = T0 }, Ct);
        var storeSecond = _spool.StoreAsync(second, Ct);

        gate.Open();
        await gate.Held;

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => failing.WaitAsync(Timeout));
        Assert.Equal("operation failed", error.Message);
        Assert.True(await storeFirst.WaitAsync(Timeout));
        Assert.True(await storeSecond.WaitAsync(Timeout));
        await suppress.WaitAsync(Timeout);

        Assert.Equal(commitsBefore + 2, _database.Commits); // the gate's batch, then one for all four
        Assert.NotNull(await _spool.GetMessageAsync(first.Id, Ct));
        Assert.NotNull(await _spool.GetMessageAsync(second.Id, Ct));
        Assert.NotNull(await policy.GetSuppressionAsync("kept@example.com", Ct));
        Assert.Null(await policy.GetSuppressionAsync("doomed@example.com", Ct));
    }

    [Fact]
    public async Task A_duplicate_id_in_the_same_batch_as_its_original_returns_false_for_the_second_only()
    {
        await using var gate = await WriterGate.HoldAsync(_database);
        var commitsBefore = _database.Commits;
        var original = Message("first@example.org");
        var duplicate = original with { Sender = "second@example.org", Recipients = [new NewRecipient { Address = "x@example.org" }] };

        var storeOriginal = _spool.StoreAsync(original, Ct);
        var storeDuplicate = _spool.StoreAsync(duplicate, Ct);
        gate.Open();

        Assert.True(await storeOriginal.WaitAsync(Timeout));
        Assert.False(await storeDuplicate.WaitAsync(Timeout));
        Assert.Equal(commitsBefore + 2, _database.Commits);

        var status = await _spool.GetStatusAsync(original.Id, Ct);
        Assert.Equal("first@example.org", status!.Sender);
        Assert.Equal(["other@example.net", "rcpt@example.com"], status.Recipients.Select(r => r.Address).Order());
    }

    [Fact]
    public async Task A_claim_in_the_same_batch_as_a_store_sees_it_and_a_second_claim_does_not_take_it_again()
    {
        await using var gate = await WriterGate.HoldAsync(_database);
        var message = Message();
        var store = _spool.StoreAsync(message, Ct);
        var claim = _spool.ClaimDueAsync(T0, 10, TimeSpan.FromMinutes(5), Ct);
        var again = _spool.ClaimDueAsync(T0, 10, TimeSpan.FromMinutes(5), Ct);
        gate.Open();

        Assert.True(await store.WaitAsync(Timeout));
        Assert.Equal(2, (await claim.WaitAsync(Timeout)).Sum(j => j.Recipients.Count));
        Assert.Empty(await again.WaitAsync(Timeout));
    }

    [Fact]
    public async Task An_operation_cancelled_while_queued_never_runs_and_its_caller_is_cancelled()
    {
        await using var gate = await WriterGate.HoldAsync(_database);
        using var cancellation = new CancellationTokenSource();
        var ran = false;
        var cancelled = _database.WriteAsync(_ =>
        {
            ran = true;
            return Task.FromResult(0);
        }, 0, cancellation.Token);
        var kept = _spool.StoreAsync(Message(), Ct);

        await cancellation.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Timeout));
        Assert.False(kept.IsCompleted); // still queued behind the gate

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _spool.StoreAsync(Message(), cancellation.Token));

        gate.Open();
        Assert.True(await kept.WaitAsync(Timeout));
        Assert.False(ran);
    }

    [Fact]
    public async Task A_small_write_queued_behind_several_large_ones_goes_in_the_next_batch_and_large_ones_go_one_per_batch()
    {
        var order = new System.Collections.Concurrent.ConcurrentQueue<string>();
        Task<int> Write(string name, long size) => _database.WriteAsync(_ =>
        {
            order.Enqueue(name);
            return Task.FromResult(0);
        }, size, Ct);

        long commitsBefore;
        await using (var gate = await WriterGate.HoldAsync(_database))
        {
            var large = new[] { Write("large1", 35_000_000), Write("large2", SqliteDatabase.LargeOperationBytes), Write("large3", 8_000_000) };
            var small = Write("small", 4096);
            commitsBefore = _database.Commits;
            gate.Open();
            await Task.WhenAll([.. large, small]).WaitAsync(Timeout);
        }

        Assert.Equal(["small", "large1", "large2", "large3"], order);
        Assert.Equal(3, _database.Commits - commitsBefore - 1); // the gate's own batch, then one batch per large write
    }

    [Fact]
    public async Task When_the_commit_fails_every_caller_of_the_batch_gets_the_error_and_nothing_of_it_is_stored()
    {
        await using var gate = await WriterGate.HoldAsync(_database);
        var innocent = Message();
        var store = _spool.StoreAsync(innocent, Ct);
        var poison = _database.WriteAsync(async write =>
        {
            // Deferred foreign keys are checked at COMMIT (https://sqlite.org/foreignkeys.html §4.2): the orphan attempt
            // row passes here and fails the commit of the whole batch.
            await using var command = write.CreateCommand(
                """
                PRAGMA defer_foreign_keys = ON;
                INSERT INTO spool_attempts (recipient_id, attempted_at, state) VALUES (-1, 0, 3);
                """);
            return await command.ExecuteNonQueryAsync();
        }, 0, Ct);
        gate.Open();

        var storeError = await Assert.ThrowsAsync<SqliteException>(() => store.WaitAsync(Timeout));
        var poisonError = await Assert.ThrowsAsync<SqliteException>(() => poison.WaitAsync(Timeout));
        Assert.Equal(19, storeError.SqliteErrorCode); // SQLITE_CONSTRAINT
        Assert.Same(storeError, poisonError);
        Assert.Null(await _spool.GetMessageAsync(innocent.Id, Ct));

        // The writer recovers: the next batch commits on a fresh connection.
        var retry = Message();
        Assert.True(await _spool.StoreAsync(retry, Ct).WaitAsync(Timeout));
        Assert.NotNull(await _spool.GetMessageAsync(retry.Id, Ct));
    }

    [Fact]
    public async Task Dispose_runs_everything_queued_then_refuses_new_writes()
    {
        var gate = await WriterGate.HoldAsync(_database);
        var messages = Enumerable.Range(0, 20).Select(_ => Message()).ToList();
        var stores = messages.Select(m => _spool.StoreAsync(m, Ct)).ToList();

        var disposing = _database.DisposeAsync().AsTask();
        Assert.False(disposing.IsCompleted);
        gate.Open();
        await disposing.WaitAsync(Timeout);

        Assert.All(await Task.WhenAll(stores), Assert.True);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => _spool.StoreAsync(Message(), Ct));

        await using var reopened = _stores.NewDatabase();
        var spool = new SqliteSpool(reopened);
        foreach (var message in messages)
        {
            Assert.NotNull(await spool.GetMessageAsync(message.Id, Ct));
        }
    }

    [Fact]
    public async Task Per_operation_mode_commits_once_per_write()
    {
        await using var database = _stores.NewDatabase(SqliteCommitMode.PerOperation);
        var spool = new SqliteSpool(database);

        var stored = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Task.Run(() => spool.StoreAsync(Message(), Ct))));

        Assert.All(stored, Assert.True);
        Assert.Equal(20, database.Commits);
    }

    [Fact]
    public async Task Small_batches_journal_in_memory_and_large_ones_and_other_connections_to_a_file()
    {
        // temp_store: 2 is MEMORY, 0 the build's default (a file). A savepoint journal spilled to /var/tmp for every 100 KB
        // message (issue 8), but in memory it never spills, so a batch that may change many pages (a large body, a
        // migration that rewrites a table) must not have it.
        Task<long> TempStore(long size) => _database.WriteAsync(
            async write =>
            {
                await using var pragma = write.CreateCommand("PRAGMA temp_store");
                return Convert.ToInt64(await pragma.ExecuteScalarAsync(Ct), System.Globalization.CultureInfo.InvariantCulture);
            },
            size,
            Ct);

        Assert.Equal(2, await TempStore(0));
        Assert.Equal(0, await TempStore(SqliteDatabase.LargeOperationBytes));
        Assert.Equal(2, await TempStore(SqliteDatabase.LargeOperationBytes - 1));

        await using var reader = await _database.OpenAsync(Ct);
        await using var command = reader.CreateCommand();
        command.CommandText = "PRAGMA temp_store";
        Assert.Equal(0L, await command.ExecuteScalarAsync(Ct));
    }

    [Fact]
    public async Task Commits_never_checkpoint_the_wal_and_the_checkpointer_moves_it_into_the_database_file()
    {
        // A commit that also ran SQLite's automatic checkpoint (every 1,000 pages) made its whole batch wait for the copy
        // and the database file's fsync: the writer connection has it off.
        var autoCheckpoint = await _database.WriteAsync(
            async write =>
            {
                await using var pragma = write.CreateCommand("PRAGMA wal_autocheckpoint");
                return Convert.ToInt64(await pragma.ExecuteScalarAsync(Ct), System.Globalization.CultureInfo.InvariantCulture);
            },
            0,
            Ct);
        Assert.Equal(0, autoCheckpoint);

        // 4 MiB of bodies, a quarter of what would have set off SQLite's own checkpoint: the checkpointer copies them into
        // the database file anyway, without anyone asking.
        var fileBefore = new FileInfo(_database.Path).Length;
        var checkpointsBefore = _database.Checkpoints;
        foreach (var i in Enumerable.Range(0, 16))
        {
            var body = new byte[256 * 1024];
            Random.Shared.NextBytes(body);
            Assert.True(await _spool.StoreAsync(Message() with { Content = body }, Ct));
        }

        using var timeout = new CancellationTokenSource(Timeout);
        while (new FileInfo(_database.Path).Length < fileBefore + (4 * 1024 * 1024) || _database.Checkpoints == checkpointsBefore)
        {
            await Task.Delay(50, timeout.Token);
        }
    }

    [Fact]
    public async Task Under_continuous_writes_the_wal_starts_again_from_its_beginning()
    {
        // A PASSIVE checkpoint never caught up while batches kept appending, so the WAL never restarted: it grew by every
        // write for as long as the load lasted (a gigabyte in ten seconds at 300 mails a second, issue 8). Here eight
        // writers never let the queue empty, against a database that restarts its WAL from 1 MiB of frames. They write
        // until the first restart (however fast the disk), then 320 MiB more: without restarts the WAL would end longer
        // than those 320 MiB, since every body is in it.
        await using var database = new SqliteDatabase(_database.Path) { RestartWalFrames = 64 };
        var spool = new SqliteSpool(database);
        var wal = new FileInfo(database.Path + "-wal");
        const int Writers = 8, BodyBytes = 256 * 1024;
        const long Measured = 320L * 1024 * 1024, Cap = 768L * 1024 * 1024;
        long written = 0, afterFirstRestart = -1, largest = 0;
        var writing = true;
        var sampler = Task.Run(async () =>
        {
            while (Volatile.Read(ref writing))
            {
                if (Interlocked.Read(ref afterFirstRestart) >= 0)
                {
                    wal.Refresh();
                    largest = Math.Max(largest, wal.Exists ? wal.Length : 0);
                }

                await Task.Delay(10, CancellationToken.None);
            }
        });

        try
        {
            await Task.WhenAll(Enumerable.Range(0, Writers).Select(_ => Task.Run(async () =>
            {
                var body = new byte[BodyBytes];
                Random.Shared.NextBytes(body);
                while (Interlocked.Read(ref afterFirstRestart) < Measured && Interlocked.Read(ref written) < Cap)
                {
                    Assert.True(await spool.StoreAsync(Message() with { Content = body }, Ct));
                    Interlocked.Add(ref written, BodyBytes);
                    if (database.WalRestarts > 0)
                    {
                        // The first writer to see the restart starts the measured stretch.
                        Interlocked.CompareExchange(ref afterFirstRestart, 0, -1);
                        Interlocked.Add(ref afterFirstRestart, BodyBytes);
                    }
                }
            }))).WaitAsync(TimeSpan.FromMinutes(3));
        }
        finally
        {
            Volatile.Write(ref writing, false);
            await sampler;
        }

        Assert.True(database.WalRestarts > 0, $"the WAL never restarted while {written >> 20} MiB were written");
        // journal_size_limit cuts a restarted WAL's file back to 64 MiB; it grows by what is written until the next
        // restart (a checkpoint tick, 250 ms, of writes as fast as the disk takes them).
        Assert.True(database.WalRestarts > 1, $"the WAL restarted once, then not again while {afterFirstRestart >> 20} MiB were written");
        Assert.True(largest < Measured, $"the WAL grew to {largest >> 20} MiB while {afterFirstRestart >> 20} MiB were written after its first restart");
    }

    [Fact]
    public async Task The_writer_runs_on_a_thread_of_its_own_and_comes_back_to_it_after_an_await()
    {
        // On the thread pool, the writer held a pool thread through every batch's statements and fsync, and its wake-up
        // queued behind every session's work item: at 80 % of peak the accept p99 was over 50 ms in 4 of 7 runs (issue 8).
        var (before, after) = await _database.WriteAsync(
            async _ =>
            {
                var first = Thread.CurrentThread;
                await Task.Delay(1); // completes on a timer thread; the rest of the operation must not run there
                return (first, Thread.CurrentThread);
            },
            0,
            Ct).WaitAsync(Timeout);

        Assert.False(before.IsThreadPoolThread);
        Assert.Equal("SQLite group commit", before.Name);
        Assert.Same(before, after);
    }

    [Fact]
    public async Task A_loop_on_a_dedicated_thread_ends_its_task_with_its_exception_and_late_posts_run_on_the_pool()
    {
        SynchronizationContext? captured = null;
        var loop = DedicatedThread.Run("test loop", async () =>
        {
            captured = SynchronizationContext.Current;
            await Task.Yield();
            throw new InvalidOperationException("the loop failed");
        });

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => loop.WaitAsync(Timeout));
        Assert.Equal("the loop failed", error.Message);

        // A continuation posted after the loop ended still runs, on the pool.
        var ran = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        captured!.Post(_ => ran.SetResult(Thread.CurrentThread.IsThreadPoolThread), null);
        Assert.True(await ran.Task.WaitAsync(Timeout));
    }

    [Fact]
    public async Task An_async_local_one_operation_sets_is_not_seen_by_the_next()
    {
        // The pool clears a thread's async-locals after each work item; the writer's own thread must too, or an
        // operation's Activity or logging scope would stay ambient for every later one.
        await _database.WriteAsync(
            async _ =>
            {
                await Task.Delay(1);
                Ambient.Value = "left by the first operation";
                return 0;
            },
            0,
            Ct).WaitAsync(Timeout);

        var seen = await _database.WriteAsync(
            async _ =>
            {
                await Task.Delay(1);
                return Ambient.Value;
            },
            0,
            Ct).WaitAsync(Timeout);

        Assert.Null(seen);
    }

    [Fact]
    public async Task The_writer_compiles_a_statement_once_and_runs_it_again_in_later_operations_and_batches()
    {
        const string Insert = "INSERT INTO policy_suppressions (address, reason, created_at) VALUES (@address, @reason, @created_at)";
        await Suppress("warm@example.com", "first");
        var compiled = _database.StatementsCompiled;
        Assert.Equal(3, compiled); // SAVEPOINT, the INSERT, RELEASE

        // One operation per batch (each awaited), then twenty in one batch: the same three statements every time.
        for (var i = 0; i < 20; i++)
        {
            await Suppress($"one{i}@example.com", $"reason {i}");
        }

        await using (var gate = await WriterGate.HoldAsync(_database))
        {
            var queued = Enumerable.Range(0, 20).Select(i => Suppress($"many{i}@example.com", $"many {i}")).ToList();
            gate.Open();
            await Task.WhenAll(queued).WaitAsync(Timeout);
        }

        // SAVEPOINT, RELEASE and the INSERT were compiled for the first operation, and never again.
        Assert.Equal(compiled, _database.StatementsCompiled);
        var policy = new SqlitePolicyStore(_database);
        Assert.Equal("reason 7", (await policy.GetSuppressionAsync("one7@example.com", Ct))!.Reason);
        Assert.Equal("many 19", (await policy.GetSuppressionAsync("many19@example.com", Ct))!.Reason);

        Task Suppress(string address, string reason) => _database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(Insert);
            command.Add("@address", address);
            command.Add("@reason", reason);
            command.Add("@created_at", 0L);
            return await command.ExecuteNonQueryAsync();
        }, 0, Ct);
    }

    [Fact]
    public async Task A_cached_statement_keeps_none_of_its_last_parameters_and_survives_a_failed_run()
    {
        const string Insert = "INSERT INTO policy_suppressions (address, reason, created_at) VALUES (@address, @reason, 0)";
        await Run(("@address", "a@example.com"), ("@reason", "kept"));

        // A parameter left out is an error, not the value the statement was given last time.
        var missing = await Assert.ThrowsAsync<InvalidOperationException>(() => Run(("@address", "b@example.com")));
        Assert.Contains("@reason", missing.Message, StringComparison.Ordinal);

        // A run that failed in SQLite (the primary key) leaves the statement ready for the next one.
        var duplicate = await Assert.ThrowsAsync<SqliteException>(() => Run(("@address", "a@example.com"), ("@reason", "again")));
        Assert.Equal(19, duplicate.SqliteErrorCode); // SQLITE_CONSTRAINT
        await Run(("@address", "c@example.com"), ("@reason", "after"));

        var policy = new SqlitePolicyStore(_database);
        Assert.Equal("kept", (await policy.GetSuppressionAsync("a@example.com", Ct))!.Reason);
        Assert.Null(await policy.GetSuppressionAsync("b@example.com", Ct));
        Assert.Equal("after", (await policy.GetSuppressionAsync("c@example.com", Ct))!.Reason);

        Task Run(params (string Name, string Value)[] parameters) => _database.WriteAsync(async write =>
        {
            await using var command = write.CreateCommand(Insert);
            foreach (var (name, value) in parameters)
            {
                command.Add(name, value);
            }

            return await command.ExecuteNonQueryAsync();
        }, 0, Ct);
    }

    [Fact]
    public async Task A_command_disposed_twice_goes_back_once_and_two_at_a_time_are_two_commands()
    {
        var (same, distinct) = await _database.WriteAsync(write =>
        {
            var first = write.CreateCommand("SELECT 1");
            first.Dispose();
            first.Dispose();
            var again = write.CreateCommand("SELECT 1");
            var other = write.CreateCommand("SELECT 1");
            var result = (ReferenceEquals(first, again), !ReferenceEquals(again, other));
            again.Dispose();
            other.Dispose();
            return Task.FromResult(result);
        }, 0, Ct);

        Assert.True(same);
        Assert.True(distinct);
    }

    [Fact]
    public async Task A_command_given_other_sql_or_disposed_with_its_reader_open_is_not_kept()
    {
        await _database.WriteAsync(_ => Task.FromResult(0), 0, Ct);
        var cached = _database.StatementsCached;
        var (sameAfterChange, compiledPerRent) = await _database.WriteAsync(async write =>
        {
            // SQL built per call (the admin's IN lists): never asked for again under that text, so not kept.
            var before = _database.StatementsCompiled;
            var built = write.CreateCommand("");
            built.CommandText = "SELECT 1";
            await built.ExecuteScalarAsync();
            built.Dispose();
            var next = write.CreateCommand("");
            var result = (ReferenceEquals(built, next), _database.StatementsCompiled - before);
            next.CommandText = "SELECT 2";
            next.Dispose();
            return result;
        }, 0, Ct);
        Assert.False(sameAfterChange);
        Assert.Equal(2, compiledPerRent);
        Assert.Equal(cached, _database.StatementsCached);

        // Disposed with its reader open (mid-step): kept, the statement would stay in progress and the batch's RELEASE
        // and COMMIT would fail for every operation in it.
        var inserted = await _database.WriteAsync(async write =>
        {
            var command = write.CreateCommand(
                "INSERT INTO policy_suppressions (address, reason, created_at) VALUES ('open@example.com', 'x', 0) RETURNING address");
            var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            var address = reader.GetString(0);
            await command.DisposeAsync();
            return address;
        }, 0, Ct).WaitAsync(Timeout);
        Assert.Equal("open@example.com", inserted);
        Assert.NotNull(await new SqlitePolicyStore(_database).GetSuppressionAsync("open@example.com", Ct));
    }

    private static readonly AsyncLocal<string?> Ambient = new();

    /// <summary>An operation that holds the writer until <see cref="Open"/>; disposing opens it too.</summary>
    private sealed class WriterGate : IAsyncDisposable
    {
        private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Held { get; private set; } = Task.CompletedTask;

        public static async Task<WriterGate> HoldAsync(SqliteDatabase database)
        {
            var gate = new WriterGate();
            gate.Held = database.WriteAsync(async _ =>
            {
                gate._started.SetResult();
                await gate._open.Task;
                return 0;
            }, 0, CancellationToken.None);
            await gate._started.Task.WaitAsync(Timeout);
            return gate;
        }

        public void Open() => _open.TrySetResult();

        public async ValueTask DisposeAsync()
        {
            Open();
            await Held.WaitAsync(Timeout);
        }
    }
}

public sealed class SqlitePerOperationCommitSpoolTests : SpoolContractTests
{
    protected override async Task<Stores> CreateStoresAsync() =>
        await SqliteStores.CreateAsync(commitMode: SqliteCommitMode.PerOperation);
}

public sealed class SqlitePerOperationCommitPolicyStoreTests : PolicyStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() =>
        await SqliteStores.CreateAsync(commitMode: SqliteCommitMode.PerOperation);
}
