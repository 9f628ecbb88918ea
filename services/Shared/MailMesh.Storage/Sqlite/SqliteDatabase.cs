using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace MailMesh.Storage.Sqlite;

/// <summary>How <see cref="SqliteDatabase"/> turns write operations into transactions.</summary>
public enum SqliteCommitMode
{
    /// <summary>
    /// Group commit (the default): one writer loop runs every operation queued meanwhile in one <c>BEGIN IMMEDIATE</c>
    /// transaction, each under its own SAVEPOINT, and commits once: one fsync for the whole batch.
    /// </summary>
    Group = 0,

    /// <summary>One <c>BEGIN IMMEDIATE</c> transaction and one fsync per operation, in the caller's turn on a semaphore.</summary>
    PerOperation = 1,
}

/// <summary>
/// One SQLite database file shared by <see cref="SqliteSpool"/>, <see cref="SqlitePolicyStore"/> and
/// <see cref="SqliteSchemaMigrator"/> in one process. Connections are set up for durability: WAL journal (readers
/// never block the writer), <c>synchronous=FULL</c> (a commit is fsynced before it returns, so 250 means safe),
/// foreign keys on, and a busy timeout for other processes.
/// </summary>
/// <remarks>
/// <para>
/// SQLite allows one writer at a time and the price of a durable commit is an fsync of the WAL, so the number of
/// commits, not the amount written, bounds how many messages a second the spool accepts. Every write is therefore a
/// <em>write operation</em>, a delegate run against the open write transaction (<see cref="WriteAsync{T}"/>), and in
/// <see cref="SqliteCommitMode.Group"/> one writer loop commits them in batches, as PostgreSQL's group commit does:
/// </para>
/// <list type="number">
/// <item>The loop wakes as soon as one operation is queued (no added latency when idle) and takes whatever else is
/// already queued, up to <see cref="MaxBatchOperations"/> operations or <see cref="MaxBatchBytes"/> bytes: the
/// operations that queued while the previous batch was being fsynced form the next batch. Operations of
/// <see cref="LargeOperationBytes"/> or more (large message bodies) wait in a line of their own and join batches one
/// at a time, so small operations are never stuck behind several of them.</item>
/// <item>It opens one <c>BEGIN IMMEDIATE</c> transaction, runs each operation under its own <c>SAVEPOINT</c>, and on
/// an exception rolls back to that savepoint only: the failing caller gets its exception, the others still
/// commit.</item>
/// <item>It commits once, and only after <c>COMMIT</c> returned (fsync done) does it complete any caller. If the
/// commit fails, every caller of the batch gets the exception: nothing of it was acknowledged.</item>
/// </list>
/// <para>
/// The loop runs on a thread of its own (<see cref="DedicatedThread"/>), as does the checkpointer: both block in SQLite
/// and in fsync, and on the thread pool they held a pool thread the sessions needed while every wake-up of the writer
/// queued behind the sessions' own work items.
/// </para>
/// <para>
/// An operation whose token is cancelled while it is queued is skipped and its caller cancelled; once its batch has
/// started it runs to completion, so a commit never leaves a caller unsure whether its write happened.
/// <see cref="DisposeAsync"/> runs what is queued, then stops the loop.
/// </para>
/// </remarks>
public sealed class SqliteDatabase : IAsyncDisposable, IDisposable
{
    /// <summary>At most this many operations share one transaction.</summary>
    public const int MaxBatchOperations = 256;

    /// <summary>A batch stops growing once its small operations' sizes add up to this.</summary>
    public const long MaxBatchBytes = 8 * 1024 * 1024;

    /// <summary>An operation this large (a large message body) waits in its own line; a batch holds at most one.</summary>
    public const long LargeOperationBytes = 1024 * 1024;

    /// <summary>
    /// The page size of a new database file. Message bodies are stored as overflow pages, and SQLite reads and writes
    /// (and the WAL frames) a page per system call: with 16 KiB pages a 100 KB body is 7 pages instead of 25.
    /// </summary>
    public const int PageSize = 16384;

    private const string FullBusyTimeout = "PRAGMA busy_timeout = 30000;";

    private const string ConnectionPragmas = FullBusyTimeout +
        """
        PRAGMA synchronous = FULL;
        PRAGMA foreign_keys = ON;
        PRAGMA temp_store = DEFAULT;
        """;

    /// <summary>
    /// The group-commit writer keeps its statement journals in memory (<c>temp_store = MEMORY</c>) for a batch of small
    /// operations. Each operation of a batch runs under its own savepoint, and SQLite keeps the pages a savepoint may have
    /// to restore in a statement journal that spills to an unnamed file in /var/tmp past 64 KiB: a 100 KB body reuses
    /// free pages, so every message spilled, two system calls per page, more <c>pwrite</c>s than the WAL itself took
    /// (issue 8). In memory the journal never spills, so it is only used where it is bounded: one small operation's pages
    /// (the journal is emptied at each operation's release). A batch with an operation of
    /// <see cref="LargeOperationBytes"/> or more (a large body, a schema migration that rewrites whole tables) journals to
    /// a file as before, and so does every other connection (<see cref="ConnectionPragmas"/> resets a pooled one).
    /// </summary>
    private const string SmallBatchJournal = "PRAGMA temp_store = MEMORY";

    private const string LargeBatchJournal = "PRAGMA temp_store = DEFAULT";

    /// <summary>
    /// Group commit: how often the checkpointer copies committed WAL frames into the database file. The writer's own
    /// automatic checkpoint is off, because it runs inside a commit: every thousand pages (16 MiB) one batch of callers
    /// waited for the copy and the database file's fsync on top of their own.
    /// </summary>
    public static readonly TimeSpan CheckpointInterval = TimeSpan.FromMilliseconds(250);

    // The WAL starts again from its beginning after each complete checkpoint; one that a burst of large bodies grew is
    // cut back to 64 MiB then, instead of keeping its largest size on disk for good.
    private const string GroupCommitPragmas = "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;";

    private const string SavepointName = "mailmesh_op";
    private const string SaveOperationSql = "SAVEPOINT " + SavepointName;
    private const string ReleaseOperationSql = "RELEASE " + SavepointName;

    /// <summary>SQLITE_ERROR, the code a spurious BEGIN failure carries (see <see cref="BeginWriteAsync"/>).</summary>
    private const int SqliteGenericError = 1;

    /// <summary>Tries of BEGIN IMMEDIATE on fresh connections before its failure is the caller's.</summary>
    private const int BeginAttempts = 3;

    private readonly string _connectionString;
    private readonly Channel<SqliteWriteOperation>? _queue;
    private readonly Task _writerLoop = Task.CompletedTask;
    private readonly SemaphoreSlim? _writer;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _checkpointLoop = Task.CompletedTask;
    private long _checkpoints;
    private SqliteConnection? _writerConnection;
    private SqliteStatementCache? _writerStatements;
    private bool? _writerJournalInMemory;
    private long _commits;
    private int _walEnabled;
    private int _disposed;

    /// <param name="path">The database file; its directory is created if missing.</param>
    public SqliteDatabase(string path)
        : this(path, SqliteCommitMode.Group)
    {
    }

    /// <param name="path">The database file; its directory is created if missing.</param>
    /// <param name="commitMode">Group commit (the default) or one transaction per write.</param>
    public SqliteDatabase(string path, SqliteCommitMode commitMode)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!Enum.IsDefined(commitMode))
        {
            throw new ArgumentOutOfRangeException(nameof(commitMode), commitMode, "Unknown SQLite commit mode.");
        }

        Path = System.IO.Path.GetFullPath(path);
        CommitMode = commitMode;
        var directory = System.IO.Path.GetDirectoryName(Path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            ForeignKeys = true,
            DefaultTimeout = 30,
        }.ToString();

        if (commitMode == SqliteCommitMode.Group)
        {
            // Unbounded: every queued operation has a caller awaiting it, so the queue is as long as the number of
            // concurrent writers, which the callers (SMTP sessions, consumers) already bound.
            _queue = Channel.CreateUnbounded<SqliteWriteOperation>(new UnboundedChannelOptions { SingleReader = true });
            _writerLoop = DedicatedThread.Run("SQLite group commit", RunWriterLoopAsync);
            _checkpointLoop = DedicatedThread.Run("SQLite checkpoint", RunCheckpointLoopAsync);
        }
        else
        {
            _writer = new SemaphoreSlim(1, 1);
        }
    }

    /// <summary>The full path of the database file.</summary>
    public string Path { get; }

    /// <summary>Group commit or one transaction per write.</summary>
    public SqliteCommitMode CommitMode { get; }

    /// <summary>
    /// Write transactions committed so far by this instance; writes divided by this is the mean batch size of the
    /// group commit (for tests, benchmarks and diagnostics).
    /// </summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Statements the group-commit writer has compiled into its cache on its current connection (tests watch it).</summary>
    internal long StatementsCompiled => Volatile.Read(ref _writerStatements)?.Created ?? 0;

    /// <summary>Compiled commands waiting in the writer's cache (tests watch it).</summary>
    internal int StatementsCached => Volatile.Read(ref _writerStatements)?.IdleCount ?? 0;

    /// <summary>WAL checkpoints the group-commit checkpointer ran (for tests and diagnostics).</summary>
    public long Checkpoints => Interlocked.Read(ref _checkpoints);

    /// <summary>A connection for reads. In WAL mode a read transaction sees one consistent snapshot.</summary>
    internal async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            if (Volatile.Read(ref _walEnabled) == 0)
            {
                // Persistent in the file; cannot run inside a transaction, so it is set here, once per process. The page
                // size applies only to a new, empty file (and must come before WAL): an existing file keeps its own.
                await using var wal = connection.CreateCommand();
                wal.CommandText = $"PRAGMA page_size = {PageSize}; PRAGMA journal_mode = WAL";
                await wal.ExecuteNonQueryAsync(cancellationToken);
                Volatile.Write(ref _walEnabled, 1);
            }

            await using var pragmas = connection.CreateCommand();
            pragmas.CommandText = CommitMode == SqliteCommitMode.Group ? ConnectionPragmas + GroupCommitPragmas : ConnectionPragmas;
            await pragmas.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Runs <paramref name="operation"/> in a write transaction and returns its result once that transaction is
    /// durably committed. The operation must do all its reads and writes through the <see cref="SqliteWrite"/> it is
    /// given and must not commit; if it throws, its writes are rolled back and the exception is rethrown here.
    /// </summary>
    /// <param name="operation">The work: runs on the writer, so it should only execute statements.</param>
    /// <param name="size">Roughly how many bytes the operation writes (bounds a batch); 0 if small.</param>
    /// <param name="cancellationToken">Honoured until the operation starts; after that it runs to completion.</param>
    internal Task<T> WriteAsync<T>(Func<SqliteWrite, Task<T>> operation, long size, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(operation);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_queue is null)
        {
            return WriteOneAsync(operation, cancellationToken);
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        var write = new SqliteWriteOperation<T>(operation, size, cancellationToken);
        if (!_queue.Writer.TryWrite(write))
        {
            write.TryFail(new ObjectDisposedException(nameof(SqliteDatabase)));
        }

        return write.Task;
    }

    /// <summary><see cref="SqliteCommitMode.PerOperation"/>: this caller's turn, its own transaction, its own commit.</summary>
    private async Task<T> WriteOneAsync<T>(Func<SqliteWrite, Task<T>> operation, CancellationToken cancellationToken)
    {
        await _writer!.WaitAsync(cancellationToken);
        try
        {
            var (connection, transaction) = await BeginWriteAsync(cancellationToken);
            await using var disposeConnection = connection;
            await using var disposeTransaction = transaction;
            var result = await operation(new SqliteWrite(connection, transaction));
            await transaction.CommitAsync(CancellationToken.None);
            Interlocked.Increment(ref _commits);
            return result;
        }
        finally
        {
            _writer.Release();
        }
    }

    /// <summary>
    /// Opens a connection and begins a write transaction on it. <c>deferred: false</c> is <c>BEGIN IMMEDIATE</c>: the
    /// write lock is taken now, so the reads that decide what to write (due recipients, lease checks) cannot be
    /// invalidated by another writer before we write. With several connections writing to one file, a BEGIN now and
    /// then fails with a bare SQLITE_ERROR ("SQL logic error"; seen once in a few thousand concurrent claims, issue 8's
    /// CI). Nothing has run then, so it is tried again on a fresh connection, a few times, before the caller hears of it.
    /// </summary>
    private async Task<(SqliteConnection Connection, SqliteTransaction Transaction)> BeginWriteAsync(CancellationToken cancellationToken, bool? journalInMemory = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            var connection = await OpenAsync(cancellationToken);
            try
            {
                if (journalInMemory is { } inMemory)
                {
                    Execute(connection, inMemory ? SmallBatchJournal : LargeBatchJournal);
                }

                return (connection, connection.BeginTransaction(deferred: false));
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == SqliteGenericError && attempt < BeginAttempts)
            {
                await connection.DisposeAsync();
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
        }
    }

    private async Task RunWriterLoopAsync()
    {
        var reader = _queue!.Reader;
        var batch = new List<SqliteWriteOperation>(MaxBatchOperations);

        // Two lines: small operations (lease takes, results, claims, small messages) and large ones (large message
        // bodies, which take seconds to write and fsync). Each batch takes the small operations queued, within the
        // bounds, and at most one large one, so a small operation waits behind one large write at most, never behind a
        // queue of them (50 concurrent 35 MB messages timed out Delivery's lease takes and Queue's heartbeat before this),
        // and large ones still go in arrival order, one per batch.
        var small = new Queue<SqliteWriteOperation>();
        var large = new Queue<SqliteWriteOperation>();
        while (batch.Count > 0 || small.Count > 0 || large.Count > 0 || await reader.WaitToReadAsync())
        {
            while (reader.TryRead(out var queued))
            {
                (queued.Size >= LargeOperationBytes ? large : small).Enqueue(queued);
            }

            // Operations cancelled while queued are skipped (and were already completed as cancelled by their
            // registration). Carried-over operations come first.
            var bytes = batch.Sum(op => op.Size);
            var hasLarge = batch.Exists(op => op.Size >= LargeOperationBytes);
            while (batch.Count < MaxBatchOperations && small.TryPeek(out var next))
            {
                if (batch.Count > 0 && bytes + next.Size > MaxBatchBytes)
                {
                    break;
                }

                small.Dequeue();
                if (next.TryStart())
                {
                    batch.Add(next);
                    bytes += next.Size;
                }
            }

            while (!hasLarge && batch.Count < MaxBatchOperations && large.TryDequeue(out var next))
            {
                if (next.TryStart())
                {
                    batch.Add(next);
                    hasLarge = true;
                }
            }

            if (batch.Count == 0)
            {
                continue;
            }

            var carryOver = await RunBatchAsync(batch);
            batch.Clear();
            if (carryOver is not null)
            {
                batch.AddRange(carryOver);
            }

            await RestartWalIfAskedAsync();
        }

        if (_writerConnection is not null)
        {
            _writerStatements?.Dispose();
            _writerStatements = null;
            await _writerConnection.DisposeAsync();
            _writerConnection = null;
        }
    }

    /// <summary>
    /// Under continuous writes a PASSIVE checkpoint never catches up: batches append frames while it copies, so it never
    /// ends with the whole WAL in the database file, and the WAL was never started again from its beginning. It grew by
    /// the whole of every write for as long as the load lasted (a gigabyte in ten seconds at 300 10 KB mails a second,
    /// issue 8): a disk filled at that rate. Once a PASSIVE checkpoint leaves the WAL this many frames long (64 MiB at
    /// 16 KiB pages, the size <c>journal_size_limit</c> cuts it back to), the writer restarts it between two batches.
    /// </summary>
    internal int RestartWalFrames { get; init; } = 4096;

    /// <summary>
    /// How long the writer's RESTART checkpoint waits for readers still on the old frames to finish. The next batch waits
    /// for it, so it gives up soon (what it copied stays copied) and is asked again later (<see cref="MaxRestartBackoffTicks"/>).
    /// </summary>
    private const int RestartBusyTimeoutMs = 20;

    /// <summary>
    /// After a RESTART a reader blocked (one streaming a large body to a slow client can hold old frames for minutes),
    /// the checkpointer waits 1, 2, 4 ... up to this many ticks before it asks again, so such a reader costs the writer
    /// 20 ms every 8 s at most, not every tick. Nothing can restart the WAL while the reader lasts.
    /// </summary>
    private const int MaxRestartBackoffTicks = 32;

    /// <summary>The WAL restarts the writer has made, each ended with every reader off the WAL (for tests and diagnostics).</summary>
    public long WalRestarts => Interlocked.Read(ref _walRestarts);

    private long _walRestarts;
    private long _walRestartsBlocked;
    // The restart's state: none, asked for by the checkpointer, or being made by the writer.
    private const int RestartNone = 0, RestartAsked = 1, RestartRunning = 2;
    private int _walRestart;

    /// <summary>Runs <c>PRAGMA wal_checkpoint(mode)</c>; returns whether it was blocked and the WAL's length in frames.</summary>
    private static async Task<(bool Busy, long WalFrames)> CheckpointAsync(SqliteConnection connection, string mode, CancellationToken cancellationToken)
    {
        await using var checkpoint = connection.CreateCommand();
        checkpoint.CommandText = $"PRAGMA wal_checkpoint({mode})";
        await using var result = await checkpoint.ExecuteReaderAsync(cancellationToken);
        return await result.ReadAsync(cancellationToken) ? (result.GetInt64(0) != 0, result.GetInt64(1)) : (false, 0);
    }

    /// <summary>
    /// On the writer, between two batches, when the checkpointer asked: a RESTART checkpoint copies what was appended
    /// since the checkpointer's last PASSIVE one and waits briefly for readers to leave the old frames; the next batch
    /// then writes the WAL from its beginning. It needs the write lock, which the writer holds through every batch, so
    /// only the writer gets it without waiting; the checkpointer starts no PASSIVE checkpoint from the request until the
    /// RESTART has ended, so the two never contend for the checkpoint lock. Never throws: a failure is retried later.
    /// </summary>
    private async Task RestartWalIfAskedAsync()
    {
        if (Interlocked.CompareExchange(ref _walRestart, RestartRunning, RestartAsked) != RestartAsked)
        {
            return;
        }

        if (_writerConnection is not { } connection)
        {
            // A batch failed and discarded the connection: asked again after the next copy.
            Volatile.Write(ref _walRestart, RestartNone);
            return;
        }

        try
        {
            Execute(connection, $"PRAGMA busy_timeout = {RestartBusyTimeoutMs}");
            var (blocked, _) = await CheckpointAsync(connection, "RESTART", CancellationToken.None);
            Interlocked.Increment(ref blocked ? ref _walRestartsBlocked : ref _walRestarts);
        }
        catch (Exception ex) when (ex is SqliteException or InvalidOperationException)
        {
            // Asked again later; the frames are safe in the WAL meanwhile.
            Interlocked.Increment(ref _walRestartsBlocked);
        }

        try
        {
            Execute(connection, FullBusyTimeout);
        }
        catch (Exception ex) when (ex is SqliteException or InvalidOperationException)
        {
            // A writer that would give up on a lock after 20 ms must not run the next batch: it begins on a fresh one.
            DiscardWriter(null);
        }
        finally
        {
            // Only now may the checkpointer copy again: until here its PASSIVE checkpoint would contend with the RESTART.
            Volatile.Write(ref _walRestart, RestartNone);
        }
    }

    /// <summary>
    /// Group commit: copies committed WAL frames into the database file off the commit path. A PASSIVE checkpoint takes
    /// no write lock, so batches keep committing (appending to the WAL) while it copies and fsyncs the database file;
    /// once it has copied everything and no reader still needs the old frames, the next write starts the WAL from its
    /// beginning again. Under continuous writes that never happens, so a WAL of <see cref="RestartWalFrames"/> or more
    /// gets a second PASSIVE copy (what the first left behind) and the writer is asked to restart it. A failed checkpoint
    /// (a reader holding old frames, an I/O error) is tried again at the next tick; the frames stay safe in the WAL.
    /// </summary>
    private async Task RunCheckpointLoopAsync()
    {
        using var timer = new PeriodicTimer(CheckpointInterval);
        var checkpointedAt = 0L;
        var (backoff, waitTicks, blockedSeen, askedAt) = (0, 0, 0L, 0L);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                var commits = Commits;
                var restart = Volatile.Read(ref _walRestart);
                if (restart == RestartAsked && commits == askedAt)
                {
                    // No batch since the writer was asked: it is idle (it looks after each batch) and a copy now has no
                    // writes to race, so the WAL restarts by itself. The request is taken back unless the writer took it.
                    restart = Interlocked.CompareExchange(ref _walRestart, RestartNone, RestartAsked);
                    restart = restart == RestartAsked ? RestartNone : restart;
                }

                if (commits == checkpointedAt || restart != RestartNone)
                {
                    // Nothing new, or the writer has a restart to make: a PASSIVE checkpoint now would hold the
                    // checkpoint lock its RESTART needs.
                    continue;
                }

                if (Interlocked.Read(ref _walRestartsBlocked) is var blocked && blocked != blockedSeen)
                {
                    (blockedSeen, backoff) = (blocked, Math.Clamp(backoff * 2, 1, MaxRestartBackoffTicks));
                    waitTicks = backoff;
                }

                try
                {
                    await using var connection = await OpenAsync(_stopping.Token);
                    var (_, walFrames) = await CheckpointAsync(connection, "PASSIVE", _stopping.Token);
                    checkpointedAt = commits;
                    Interlocked.Increment(ref _checkpoints);
                    if (walFrames < RestartWalFrames)
                    {
                        // Short again (restarted by the writer or in a lull, or never grown): the next request is made
                        // without back-off.
                        (backoff, waitTicks) = (0, 0);
                    }
                    else if (waitTicks > 0)
                    {
                        waitTicks--;
                    }
                    else
                    {
                        // What was appended while the first copy ran, so that the writer's RESTART has little left.
                        await CheckpointAsync(connection, "PASSIVE", _stopping.Token);
                        // Asked first, counted after: a batch that commits in between either sees the request or is
                        // counted, so "no batch since" below means the writer is idle.
                        Volatile.Write(ref _walRestart, RestartAsked);
                        askedAt = Commits;
                    }
                }
                catch (SqliteException)
                {
                    // Next tick.
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Runs one batch in one transaction and completes its callers. Returns the operations that did not get to run
    /// because the transaction was lost under them (they go first in the next batch), or null.
    /// </summary>
    private async Task<List<SqliteWriteOperation>?> RunBatchAsync(List<SqliteWriteOperation> batch)
    {
        SqliteTransaction? transaction = null;
        var ran = 0;
        try
        {
            var journalInMemory = !batch.Exists(op => op.Size >= LargeOperationBytes);
            if (_writerConnection is not null)
            {
                try
                {
                    SetWriterJournal(journalInMemory);
                    transaction = _writerConnection.BeginTransaction(deferred: false);
                }
                catch (SqliteException ex) when (ex.SqliteErrorCode == SqliteGenericError)
                {
                    DiscardWriter(null); // and begin on a fresh one, as BeginWriteAsync does
                }
            }

            if (transaction is null)
            {
                (_writerConnection, transaction) = await BeginWriteAsync(CancellationToken.None, journalInMemory);
                _writerJournalInMemory = journalInMemory;
            }

            var connection = _writerConnection!;
            var statements = _writerStatements ??= new SqliteStatementCache(connection);
            var write = new SqliteWrite(connection, transaction, statements);
            for (; ran < batch.Count; ran++)
            {
                var op = batch[ran];
                Execute(statements, SaveOperationSql, transaction);
                try
                {
                    await op.RunAsync(write);
                }
                catch (Exception ex)
                {
                    if (!TryRollBackOperation(connection, transaction))
                    {
                        // SQLite rolled back the whole transaction (SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY, ...): the
                        // operations already run are lost with it, so their callers get the cause; the ones not yet
                        // run never started and go to the next batch.
                        op.TryFail(ex);
                        FailAll(batch, 0, ran, ex);
                        DiscardWriter(transaction);
                        transaction = null;
                        return batch.GetRange(ran + 1, batch.Count - ran - 1);
                    }

                    op.TryFail(ex);
                    continue;
                }

                Execute(statements, ReleaseOperationSql, transaction);
            }

            // One fsync (synchronous=FULL) for the whole batch; nobody hears back before it returned.
            await transaction.CommitAsync(CancellationToken.None);
            await transaction.DisposeAsync();
            transaction = null;
            Interlocked.Increment(ref _commits);
            foreach (var op in batch)
            {
                op.TryComplete();
            }

            return null;
        }
        catch (Exception ex)
        {
            // BEGIN or COMMIT failed (or the connection could not be opened): nothing of this batch was acknowledged
            // and, as far as its callers can know, nothing of it was written.
            FailAll(batch, 0, batch.Count, ex);
            DiscardWriter(transaction);
            return null;
        }
    }

    /// <summary>Rolls back to the operation's savepoint; false if the enclosing transaction itself is gone.</summary>
    private static bool TryRollBackOperation(SqliteConnection connection, SqliteTransaction transaction)
    {
        if (SQLitePCL.raw.sqlite3_get_autocommit(connection.Handle) != 0)
        {
            return false; // back in autocommit mode: SQLite already rolled the transaction back
        }

        try
        {
            transaction.Rollback(SavepointName);
            transaction.Release(SavepointName);
            return true;
        }
        catch (SqliteException)
        {
            return false;
        }
    }

    private static void FailAll(List<SqliteWriteOperation> batch, int start, int end, Exception exception)
    {
        for (var i = start; i < end; i++)
        {
            batch[i].TryFail(exception);
        }
    }

    /// <summary>Sets the writer's statement journal for the next batch (<see cref="SmallBatchJournal"/>), outside a
    /// transaction; a no-op when it is already set.</summary>
    private void SetWriterJournal(bool inMemory)
    {
        if (_writerJournalInMemory != inMemory)
        {
            Execute(_writerConnection!, inMemory ? SmallBatchJournal : LargeBatchJournal);
            _writerJournalInMemory = inMemory;
        }
    }

    private static void Execute(SqliteStatementCache statements, string sql, SqliteTransaction transaction)
    {
        using var command = statements.Rent(sql, transaction);
        command.ExecuteNonQuery();
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>After a failed batch the writer connection may be in any state: close it, the next batch opens a new one.</summary>
    private void DiscardWriter(SqliteTransaction? transaction)
    {
        try
        {
            transaction?.Dispose();
        }
        catch (SqliteException)
        {
            // The rollback on dispose failed too; closing the connection ends the transaction anyway.
        }
        catch (InvalidOperationException)
        {
            // The transaction was already completed by SQLite.
        }

        _writerStatements?.Dispose();
        _writerStatements = null;
        _writerConnection?.Dispose();
        _writerConnection = null;
        _writerJournalInMemory = null;
    }

    /// <summary>Runs every operation queued so far, stops the writer loop and releases the file's pooled connections.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _queue?.Writer.TryComplete();
        try
        {
            await _writerLoop;
        }
        finally
        {
            // The checkpointer's thread ends even if the writer's loop failed.
            await _stopping.CancelAsync();
            await _checkpointLoop;
            ReleaseResources();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _queue?.Writer.TryComplete();
        try
        {
            _writerLoop.GetAwaiter().GetResult();
        }
        finally
        {
            _stopping.Cancel();
            _checkpointLoop.GetAwaiter().GetResult();
            ReleaseResources();
        }
    }

    private void ReleaseResources()
    {
        using var connection = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(connection);
        _writer?.Dispose();
        _stopping.Dispose();
    }
}

/// <summary>
/// The open write transaction as one operation sees it. In group commit the transaction is shared with the other
/// operations of the batch and this operation runs under its own savepoint; it must not commit or roll back.
/// </summary>
internal sealed class SqliteWrite(SqliteConnection connection, SqliteTransaction transaction, SqliteStatementCache? statements = null)
{
    /// <summary>The write connection, for incremental blob I/O (<see cref="SqliteBlob"/>) inside the transaction.</summary>
    public SqliteConnection Connection => connection;

    /// <summary>The open transaction (the batch's, in group commit), for commands built by other code.</summary>
    public SqliteTransaction Transaction => transaction;

    /// <summary>A command for <paramref name="sql"/> in the transaction; the group-commit writer's come compiled from its
    /// <see cref="SqliteStatementCache"/> and go back to it when disposed.</summary>
    public SqliteCommand CreateCommand(string sql)
    {
        if (statements is not null)
        {
            return statements.Rent(sql, transaction);
        }

        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }
}

/// <summary>A queued write and the caller awaiting it.</summary>
internal abstract class SqliteWriteOperation(long size)
{
    private const int Queued = 0;
    private const int Started = 1;
    private const int Cancelled = 2;

    private int _state;

    public long Size { get; } = Math.Max(size, 0);

    /// <summary>Takes the operation out of the queue for a batch; false if its caller cancelled it first.</summary>
    public bool TryStart()
    {
        if (Interlocked.CompareExchange(ref _state, Started, Queued) != Queued)
        {
            return false;
        }

        OnStarted();
        return true;
    }

    /// <summary>Called from the token's registration: cancels the caller only if no batch took the operation yet.</summary>
    protected bool TryCancel() => Interlocked.CompareExchange(ref _state, Cancelled, Queued) == Queued;

    protected abstract void OnStarted();

    public abstract Task RunAsync(SqliteWrite write);

    /// <summary>The batch committed: hand the caller its result (or the exception its operation threw).</summary>
    public abstract void TryComplete();

    public abstract void TryFail(Exception exception);
}

internal sealed class SqliteWriteOperation<T> : SqliteWriteOperation
{
    private readonly Func<SqliteWrite, Task<T>> _operation;
    private readonly TaskCompletionSource<T> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenRegistration _registration;
    private T _result = default!;

    public SqliteWriteOperation(Func<SqliteWrite, Task<T>> operation, long size, CancellationToken cancellationToken)
        : base(size)
    {
        _operation = operation;
        if (cancellationToken.CanBeCanceled)
        {
            _registration = cancellationToken.UnsafeRegister(
                static (state, token) =>
                {
                    var self = (SqliteWriteOperation<T>)state!;
                    if (self.TryCancel())
                    {
                        self._completion.TrySetCanceled(token);
                    }
                },
                this);
        }
    }

    public Task<T> Task => _completion.Task;

    protected override void OnStarted() => _registration.Dispose();

    public override async Task RunAsync(SqliteWrite write) => _result = await _operation(write);

    public override void TryComplete() => _completion.TrySetResult(_result);

    public override void TryFail(Exception exception)
    {
        _registration.Dispose();
        _completion.TrySetException(exception);
    }
}

internal static class SqliteParameters
{
    public static SqliteParameter Add(this SqliteCommand command, string name, object? value) =>
        command.Parameters.AddWithValue(name, value ?? DBNull.Value);

    public static string? NullableString(this SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    public static DateTimeOffset Timestamp(this SqliteDataReader reader, int ordinal) =>
        StoreArguments.FromUnixMs(reader.GetInt64(ordinal));

    public static DateTimeOffset? NullableTimestamp(this SqliteDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? null : StoreArguments.FromUnixMs(reader.GetInt64(ordinal));
}
