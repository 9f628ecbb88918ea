using System.Text;
using MailMesh.Contracts;
using MailMesh.Mailbox.Deliveries;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using MailMesh.Storage.Sqlite;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;

namespace MailMesh.Mailbox.Tests;

/// <summary>
/// The local delivery consumer through MassTransit's in-memory test harness, over a real SQLite spool and mail store:
/// it takes the lease, stores once, records the result in the outbox, and a redelivered or re-issued work item never
/// stores twice.
/// </summary>
public sealed class LocalDeliveryConsumerTests : IAsyncLifetime
{
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly byte[] Content = "Subject: hi\r\n\r\nfor the mailbox\r\n"u8.ToArray();

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "mailmesh-mailbox-tests", Guid.NewGuid().ToString("N"));
    private SqliteDatabase _database = null!;
    private IHost _host = null!;

    private ISpool Spool => _host.Services.GetRequiredService<ISpool>();

    private IMailStore Store => _host.Services.GetRequiredService<IMailStore>();

    private ITestHarness Harness => _host.Services.GetRequiredService<ITestHarness>();

    public async Task InitializeAsync()
    {
        _database = new SqliteDatabase(Path.Combine(_directory, "mailmesh.db"));
        await new SqliteSchemaMigrator(_database, NullLogger<SqliteSchemaMigrator>.Instance).MigrateAsync(CancellationToken.None);

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Mailbox:HostName"] = "mx.mail.test",
            ["Mailbox:ContentDirectory"] = Path.Combine(_directory, "content"),
        });
        builder.Services.AddSingleton<ISpool>(new SqliteSpool(_database));
        builder.Services.AddSingleton<IMailStore>(new SqliteMailStore(_database));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddMetrics();
        builder.Services.AddLogging();
        builder.Services.AddValidatedOptions<LocalDeliveryOptions>();
        builder.Services.AddSingleton<LocalDeliveryMetrics>();
        builder.Services.AddMassTransitTestHarness(bus =>
        {
            bus.AddConsumer<LocalDeliveryConsumer, LocalDeliveryConsumerDefinition>();

            // Consumed.Any gives up once the bus has been idle this long (1.2 s by default): on a loaded CI machine
            // the consumer had not picked the work item up by then (seen: Any false after 482 ms).
            bus.SetTestTimeouts(testInactivityTimeout: Patience);
        });
        _host = builder.Build();
        await _host.StartAsync();

        var now = DateTimeOffset.UtcNow;
        Assert.True(await Store.CreateAccountAsync(new NewMailAccount { Address = "alice@mail.test", CreatedAt = now }, CancellationToken.None));
        Assert.True(await Store.CreateAccountAsync(new NewMailAccount { Address = "full@mail.test", QuotaBytes = 10, CreatedAt = now }, CancellationToken.None));
    }

    public async Task DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
        await _database.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>Stores a message for <paramref name="recipients"/> in the spool and claims it: the work item Queue would send.</summary>
    private Task<DeliverLocalMessage> ClaimAsync(params string[] recipients) => ClaimAsync(Content, recipients);

    private async Task<DeliverLocalMessage> ClaimAsync(byte[] content, params string[] recipients)
    {
        var id = Guid.NewGuid();
        await Spool.StoreAsync(new NewMessage
        {
            Id = id,
            Sender = "sender@origin.test",
            Recipients = [.. recipients.Select(r => new NewRecipient { Address = r })],
            Content = content,
            ReceivedAt = DateTimeOffset.UtcNow,
        }, CancellationToken.None);
        var job = Assert.Single(await Spool.ClaimDueAsync(DateTimeOffset.UtcNow, 100, Lease, CancellationToken.None));
        return Work(job);
    }

    private static DeliverLocalMessage Work(DeliveryJob job) => new()
    {
        Work = new DeliverMessage
        {
            MessageId = job.MessageId,
            Domain = job.Domain,
            LeaseId = job.LeaseId,
            LeaseExpiresAt = job.LeaseExpiresAt,
            LeaseDuration = Lease,
            Recipients = [.. job.Recipients.Select(r => new DeliveryRecipient { RecipientId = r.RecipientId, Address = r.Address, Attempt = r.Attempt })],
        },
    };

    private async Task<DeliveryAttempted> ResultAsync(Guid messageId)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (DateTime.UtcNow < deadline)
        {
            var results = await Spool.ClaimResultsAsync(DateTimeOffset.UtcNow, 100, TimeSpan.FromMinutes(1), CancellationToken.None);
            if (results.FirstOrDefault(r => r.MessageId == messageId) is { } found)
            {
                return System.Text.Json.JsonSerializer.Deserialize<DeliveryAttempted>(found.Payload)!;
            }

            await Task.Delay(20);
        }

        throw new TimeoutException("no result recorded");
    }

    private async Task ConsumeAsync(DeliverLocalMessage work)
    {
        await Harness.Bus.Publish(work);
        using var timeout = new CancellationTokenSource(Patience);
        Assert.True(await Harness.Consumed.Any<DeliverLocalMessage>(m => m.Context.Message.Work.LeaseId == work.Work.LeaseId, timeout.Token));
    }

    [Fact]
    public async Task A_work_item_is_stored_with_its_trace_lines_and_its_result_recorded_in_the_outbox()
    {
        var work = await ClaimAsync("Alice@mail.test", "nobody@mail.test", "full@mail.test");
        await ConsumeAsync(work);

        var attempted = await ResultAsync(work.Work.MessageId);
        Assert.Equal(work.Work.LeaseId, attempted.LeaseId);
        Assert.Equal(
            [(DeliveryOutcome.Delivered, 250, "2.0.0"), (DeliveryOutcome.Bounced, 550, "5.1.1"), (DeliveryOutcome.Deferred, 452, "4.2.2")],
            attempted.Results.Select(r => (r.Outcome, r.ReplyCode, r.EnhancedCode)));
        Assert.Equal("mx.mail.test", attempted.RemoteHost);

        var alice = await Store.GetAccountAsync("alice@mail.test", CancellationToken.None);
        var inbox = await Store.GetFolderAsync(alice!.Id, "INBOX", CancellationToken.None);
        var listed = Assert.Single(await Store.ListMessagesAsync(alice.Id, inbox!.Id, 1, 10, CancellationToken.None));
        await using var stream = await Store.OpenMessageAsync(alice.Id, inbox.Id, listed.Uid, CancellationToken.None);
        using var copy = new MemoryStream();
        await stream!.CopyToAsync(copy);
        var text = Encoding.UTF8.GetString(copy.ToArray());
        Assert.StartsWith("Return-Path: <sender@origin.test>\r\nDelivered-To: Alice@mail.test\r\nReceived: by mx.mail.test (MailMesh) with local id " + work.Work.MessageId.ToString("N") + "\r\n\tfor <Alice@mail.test>; ", text, StringComparison.Ordinal);
        Assert.EndsWith("\r\n" + Encoding.UTF8.GetString(Content), text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_message_over_the_inline_limit_is_streamed_from_the_spool_and_stored_byte_exact()
    {
        var content = new byte[(3 * 1024 * 1024) + 17];
        new Random(9).NextBytes(content);
        "Subject: large\r\n\r\n"u8.CopyTo(content);
        var work = await ClaimAsync(content, "alice@mail.test");

        await ConsumeAsync(work);

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single((await ResultAsync(work.Work.MessageId)).Results).Outcome);
        var alice = await Store.GetAccountAsync("alice@mail.test", CancellationToken.None);
        var inbox = await Store.GetFolderAsync(alice!.Id, "INBOX", CancellationToken.None);
        var listed = Assert.Single(await Store.ListMessagesAsync(alice.Id, inbox!.Id, 1, 10, CancellationToken.None));
        await using var stream = await Store.OpenMessageAsync(alice.Id, inbox.Id, listed.Uid, CancellationToken.None);
        using var copy = new MemoryStream();
        await stream!.CopyToAsync(copy);
        var stored = copy.ToArray();
        Assert.Equal(content, stored[^content.Length..]); // after the Return-Path, Delivered-To and Received lines
        Assert.Empty(Directory.GetFiles(Path.Combine(_directory, "content")));
    }

    [Fact]
    public async Task A_work_item_whose_lease_was_reissued_stores_nothing_and_the_new_lease_reports_the_stored_message()
    {
        var first = await ClaimAsync("alice@mail.test");

        // The store commits, then the result is lost with the process: Queue re-issues the lease when it expires.
        var recipient = first.Work.Recipients[0];
        await Store.DeliverAsync(new LocalDelivery
        {
            SpoolMessageId = first.Work.MessageId,
            Body = Content,
            DeliveredAt = DateTimeOffset.UtcNow,
            Recipients = [new LocalDeliveryRecipient { RecipientId = recipient.RecipientId, Address = recipient.Address }],
        }, CancellationToken.None);
        var reissued = Work(Assert.Single(await Spool.ClaimDueAsync(DateTimeOffset.UtcNow + Lease + TimeSpan.FromSeconds(1), 100, Lease, CancellationToken.None)));
        Assert.NotEqual(first.Work.LeaseId, reissued.Work.LeaseId);

        await ConsumeAsync(first);
        await ConsumeAsync(reissued);

        var attempted = await ResultAsync(reissued.Work.MessageId);
        Assert.Equal(reissued.Work.LeaseId, attempted.LeaseId);
        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempted.Results).Outcome);
        var alice = await Store.GetAccountAsync("alice@mail.test", CancellationToken.None);
        var inbox = await Store.GetFolderAsync(alice!.Id, "INBOX", CancellationToken.None);
        Assert.Single(await Store.ListMessagesAsync(alice.Id, inbox!.Id, 1, 10, CancellationToken.None));
    }
}
