using MailMesh.Storage.Sqlite;

namespace MailMesh.Storage.IntegrationTests;

/// <summary>Tests that measure the process's allocations: run alone, after the parallel ones.</summary>
[CollectionDefinition(nameof(AllocationSensitive), DisableParallelization = true)]
public sealed class AllocationSensitive;

/// <summary>
/// The defect this guards (issue 8): a 100 KB message cost Standalone two large-object allocations of its own size.
/// Storing it copied Ingress's receive buffer into an exact-size array to bind it, and starting its attempt read the
/// blob through the data reader, which loads a whole new array before copying it into the rented one. Together they
/// were 1.1 GB/s of large-object allocations under load and a gen-2 collection several times a second.
/// </summary>
[Collection(nameof(AllocationSensitive))]
public sealed class SqliteSpoolAllocationTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(5);

    private SqliteStores _stores = null!;

    public async Task InitializeAsync() => _stores = await SqliteStores.CreateAsync();

    public async Task DisposeAsync() => await _stores.DisposeAsync();

    [Theory]
    [InlineData(40 * 1024)]
    [InlineData(100 * 1024)]
    [InlineData(StoredMessage.InlineContentLimit)]
    public async Task Storing_a_message_and_starting_its_attempt_allocate_far_less_than_its_content(int size)
    {
        // A slice of a bigger buffer, as Ingress hands it over.
        var buffer = new byte[size + 64];
        new Random(size).NextBytes(buffer);
        "Subject: s\r\n\r\n"u8.CopyTo(buffer.AsSpan(32));
        var content = buffer.AsMemory(32, size);

        // What a message costs whatever its size (commands, parameters, the envelope) is measured on a small one.
        var fixedCost = await AllocatedPerMessageAsync("Subject: s\r\n\r\nb\r\n"u8.ToArray());
        var perMessage = await AllocatedPerMessageAsync(content);

        Assert.True(
            perMessage - fixedCost < size / 4,
            $"Storing and starting one message of {size} octets allocated {perMessage} bytes, a small one {fixedCost}");
    }

    private async Task<long> AllocatedPerMessageAsync(ReadOnlyMemory<byte> content)
    {
        // The first round fills the pools (ArrayPool, SQLite's page cache, the writer's prepared statements).
        await StoreAndStartAsync(content);

        // The count is the whole process's (the writer runs on its own thread), so anything else that allocates during a
        // window (a timer, a checkpoint, another test class's leftovers) adds to it: the least of three windows is the
        // messages' own cost. A cost that grows with the content is in every window.
        const int Rounds = 10;
        var least = long.MaxValue;
        for (var window = 0; window < 3; window++)
        {
            var before = GC.GetTotalAllocatedBytes(precise: true);
            for (var i = 0; i < Rounds; i++)
            {
                await StoreAndStartAsync(content);
            }

            least = Math.Min(least, (GC.GetTotalAllocatedBytes(precise: true) - before) / Rounds);
        }

        return least;
    }

    private async Task StoreAndStartAsync(ReadOnlyMemory<byte> content)
    {
        var spool = _stores.Spool;
        var message = Message(content, T0);
        Assert.True(await spool.StoreAsync(message, CancellationToken.None));
        var job = Assert.Single(await spool.ClaimDueAsync(T0, 10, Lease, CancellationToken.None));
        var taken = await spool.StartAttemptAsync(message.Id, job.LeaseId, Guid.NewGuid(), T0 + Lease, CancellationToken.None);
        try
        {
            Assert.True(content.Span.SequenceEqual(taken!.Content.Span));
        }
        finally
        {
            taken?.ContentLease?.Dispose();
        }

        // Not due again: the next round claims only its own message.
        var update = Delivered(job.Recipients[0].RecipientId, T0);
        Assert.Single(await spool.CompleteAttemptAsync(message.Id, job.LeaseId, [update], CancellationToken.None));
    }

    /// <summary>A message with one recipient, as Ingress stores it.</summary>
    internal static NewMessage Message(ReadOnlyMemory<byte> content, DateTimeOffset receivedAt) => new()
    {
        Id = Guid.NewGuid(),
        Sender = "sender@example.org",
        Recipients = [new NewRecipient { Address = "rcpt@example.com" }],
        Content = content,
        ReceivedAt = receivedAt,
    };

    internal static RecipientUpdate Delivered(long recipientId, DateTimeOffset at) =>
        new() { RecipientId = recipientId, State = RecipientState.Delivered, AttemptedAt = at, ReplyCode = 250, EnhancedCode = "2.0.0", ReplyText = "ok" };
}

/// <summary>
/// The defect this guards (issue 8): the content lived in the message's row, and SQLite rewrites a whole row when one
/// column changes, so marking a delivered 100 KB message complete wrote its 100 KB to the WAL a second time.
/// </summary>
public sealed class SqliteSpoolWriteTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);

    private SqliteStores _stores = null!;

    public async Task InitializeAsync() => _stores = await SqliteStores.CreateAsync(commitMode: SqliteCommitMode.PerOperation);

    public async Task DisposeAsync() => await _stores.DisposeAsync();

    [Fact]
    public async Task Completing_a_large_message_does_not_write_its_content_again()
    {
        var spool = _stores.Spool;
        var content = new byte[1024 * 1024];
        new Random(8).NextBytes(content);
        "Subject: s\r\n\r\n"u8.CopyTo(content);
        var message = SqliteSpoolAllocationTests.Message(content, T0);
        Assert.True(await spool.StoreAsync(message, CancellationToken.None));
        var job = Assert.Single(await spool.ClaimDueAsync(T0, 10, TimeSpan.FromMinutes(5), CancellationToken.None));
        (await spool.StartAttemptAsync(message.Id, job.LeaseId, Guid.NewGuid(), T0.AddMinutes(5), CancellationToken.None))!.ContentLease?.Dispose();

        // Empty the WAL, so what the completion writes is what it holds afterwards.
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_stores.Path};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var checkpoint = connection.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
            await using var reader = await checkpoint.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal(0, reader.GetInt32(0)); // not blocked
        }

        Assert.Equal(0, new FileInfo(_stores.Path + "-wal").Length);
        var delivered = SqliteSpoolAllocationTests.Delivered(job.Recipients[0].RecipientId, T0);
        Assert.Single(await spool.CompleteAttemptAsync(message.Id, job.LeaseId, [delivered], CancellationToken.None));
        Assert.NotNull((await spool.GetStatusAsync(message.Id, CancellationToken.None))!.CompletedAt);

        var written = new FileInfo(_stores.Path + "-wal").Length;
        Assert.True(written < content.Length / 4, $"Completing a message of {content.Length} octets wrote {written} octets to the WAL");
    }
}
