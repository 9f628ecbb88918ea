using BenchmarkDotNet.Attributes;
using MailMesh.Storage;
using MailMesh.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace MailMesh.Benchmarks.Storage;

/// <summary>
/// What Ingress does under load in Standalone: many SMTP sessions each committing one accepted message
/// (<see cref="ISpool.StoreAsync"/>, durable before 250) into the SQLite spool at the same time. Compares group commit
/// with one transaction and one fsync per message. Each invocation stores <see cref="Messages"/> messages of
/// <see cref="MessageSize"/> bytes from <see cref="Callers"/> concurrent callers into a fresh, migrated file; the
/// reported time is per message, so its inverse is the accept rate.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 3, invocationCount: 1)]
public class SqliteSpoolStoreBenchmarks
{
    public const int Messages = 1000;
    public const int MessageSize = 10 * 1024;

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "mailmesh-bench", Guid.NewGuid().ToString("N"));
    private NewMessage[] _messages = [];
    private SqliteDatabase? _database;
    private SqliteSpool? _spool;

    [Params(SqliteCommitMode.PerOperation, SqliteCommitMode.Group)]
    public SqliteCommitMode CommitMode { get; set; }

    [Params(32)]
    public int Callers { get; set; }

    [GlobalSetup]
    public void CreateMessages()
    {
        var content = new byte[MessageSize];
        "Subject: benchmark\r\n\r\n"u8.CopyTo(content);
        content.AsSpan(22).Fill((byte)'x');
        _messages = [.. Enumerable.Range(0, Messages).Select(i => new NewMessage
        {
            Id = Guid.Empty,
            Sender = "sender@example.org",
            Recipients = [new NewRecipient { Address = $"rcpt{i % 50}@example.com" }],
            Content = content,
            ReceivedAt = DateTimeOffset.UnixEpoch.AddYears(60),
        })];
    }

    /// <summary>A new file per iteration, so every iteration writes into the same amount of data.</summary>
    [IterationSetup]
    public void CreateSpool()
    {
        var path = Path.Combine(_directory, Guid.NewGuid().ToString("N"), "spool.db");
        _database = new SqliteDatabase(path, CommitMode);
        new SqliteSchemaMigrator(_database, NullLogger<SqliteSchemaMigrator>.Instance)
            .MigrateAsync(CancellationToken.None).GetAwaiter().GetResult();
        _spool = new SqliteSpool(_database);
        for (var i = 0; i < _messages.Length; i++)
        {
            _messages[i] = _messages[i] with { Id = Guid.NewGuid() };
        }
    }

    [IterationCleanup]
    public void DisposeSpool()
    {
        if (_database is null)
        {
            return;
        }

        // The migration is one commit; the rest are the stores'. Printed into the benchmark log.
        var commits = _database.Commits - 1;
        Console.WriteLine($"// {CommitMode}: {Messages} messages in {commits} commits, {Messages / (double)Math.Max(commits, 1):F1} per commit");
        _database.Dispose();
    }

    [GlobalCleanup]
    public void DeleteFiles()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Benchmark(OperationsPerInvoke = Messages)]
    public async Task StoreConcurrently()
    {
        var next = -1;
        var spool = _spool!;
        var callers = new Task[Callers];
        for (var c = 0; c < callers.Length; c++)
        {
            callers[c] = Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < _messages.Length)
                {
                    if (!await spool.StoreAsync(_messages[i], CancellationToken.None))
                    {
                        throw new InvalidOperationException("A new message id was reported as a duplicate.");
                    }
                }
            });
        }

        await Task.WhenAll(callers);
    }
}
