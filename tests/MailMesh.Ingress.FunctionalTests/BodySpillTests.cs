using System.Text;
using MailMesh.Ingress.Memory;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>
/// Issue 7 §3: a body past Ingress:MemoryBodyThreshold moves from its memory buffer to a delete-on-close file in
/// Ingress:SpillDirectory and streams from there into the spool. The budget then holds only the 64 KiB staging area, the
/// stored message is byte-identical, and the file is gone after the 250 and after a disconnect mid-data.
/// </summary>
public sealed class BodySpillTests : IDisposable
{
    private const int Threshold = 256 * 1024;
    private const int Staging = 64 * 1024;

    private static readonly CancellationToken Timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3)).Token;

    private readonly string _spillDirectory = Path.Combine(Path.GetTempPath(), "mailmesh-spill-test-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_spillDirectory))
        {
            Directory.Delete(_spillDirectory, recursive: true);
        }
    }

    private Task<IngressHost> StartAsync() => IngressHost.StartAsync(new()
    {
        ["Ingress:MemoryBodyThreshold"] = Threshold.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Ingress:SpillDirectory"] = _spillDirectory,
    });

    private static MessageBufferBudget Budget(IngressHost host) => host.Services.GetRequiredService<MessageBufferBudget>();

    private string[] SpillFiles() => Directory.GetFiles(_spillDirectory);

    /// <summary>About <paramref name="octets"/> octets in 100-octet lines, every line different, some 8-bit.</summary>
    private static string Body(int octets)
    {
        var text = new StringBuilder("Subject: big\r\n\r\n", octets + 100);
        for (var line = 0; text.Length + 100 <= octets; line++)
        {
            text.Append(line.ToString("D10", System.Globalization.CultureInfo.InvariantCulture)).Append(line % 1000 == 0 ? 'é' : 'x', 88).Append("\r\n");
        }

        return text.ToString();
    }

    private static async Task<RawSmtpClient> TransactionAsync(IngressHost host)
    {
        var client = await RawSmtpClient.ConnectAsync(host.SmtpEndPoint);
        Assert.Equal(250, (await client.CommandAsync("EHLO client.test")).Code);
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com> BODY=8BITMIME")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        return client;
    }

    [Fact]
    public async Task A_message_over_the_threshold_by_DATA_is_stored_byte_identical_with_only_the_staging_area_buffered_and_no_file_left()
    {
        await using var host = await StartAsync();
        var budget = Budget(host);

        // Completes if the buffered bytes ever exceed the most this transfer can hold: the last growth below the threshold
        // holds its old (half-threshold) and new (threshold) arrays while it copies; the spill holds the threshold array
        // and the staging area. Never the message's 4 MiB.
        var overBudget = budget.WaitUntilAsync(inUse => inUse > Math.Max(Threshold + (Threshold / 2), Threshold + Staging), Timeout);
        long atCommit = -1;
        var spilledAtCommit = false;
        host.Spool.BeforeStore = (message, _) =>
        {
            atCommit = budget.InUse;
            spilledAtCommit = message.ContentSource is not null && message.Content.IsEmpty && SpillFiles().Length == 1;
            return Task.CompletedTask;
        };

        var body = Body(4 * 1024 * 1024);
        await using var client = await TransactionAsync(host);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendAsync(Encoding.Latin1.GetBytes(body + ".\r\n"));
        var reply = await client.ReadReplyAsync();
        Assert.StartsWith("250 2.0.0 Ok: queued as", reply.Text, StringComparison.Ordinal);

        // The file was deleted before the 250 was written; the buffer was released too.
        Assert.Empty(SpillFiles());
        Assert.Equal(0, budget.InUse);
        Assert.True(spilledAtCommit);
        Assert.InRange(atCommit, 1, Staging);
        Assert.False(overBudget.IsCompleted);

        var id = Assert.Single(host.Spool.Stored);
        var stored = await host.Spool.Inner.GetMessageAsync(id, Timeout);
        var content = stored!.Content.ToArray();
        Assert.StartsWith("Received: ", Encoding.Latin1.GetString(content, 0, 10), StringComparison.Ordinal);
        Assert.True(content.AsSpan().EndsWith(Encoding.Latin1.GetBytes(body)));
        Assert.Equal(MailMesh.Storage.BodyType.EightBitMime, stored.BodyType);
    }

    [Fact]
    public async Task A_message_over_the_threshold_by_BDAT_is_stored_byte_identical_and_no_file_is_left()
    {
        await using var host = await StartAsync();
        var body = Encoding.Latin1.GetBytes(Body(3 * 1024 * 1024));
        await using var client = await TransactionAsync(host);
        var half = body.Length / 2;
        await client.SendAsync([.. Encoding.ASCII.GetBytes("BDAT " + half + "\r\n"), .. body.AsSpan(0, half)]);
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        await client.SendAsync([.. Encoding.ASCII.GetBytes("BDAT " + (body.Length - half) + " LAST\r\n"), .. body.AsSpan(half)]);
        Assert.StartsWith("250 2.0.0 Ok: queued as", (await client.ReadReplyAsync()).Text, StringComparison.Ordinal);
        Assert.Empty(SpillFiles());

        var stored = await host.Spool.Inner.GetMessageAsync(Assert.Single(host.Spool.Stored), Timeout);
        Assert.True(stored!.Content.Span.EndsWith(body));
    }

    [Fact]
    public async Task The_spill_file_is_deleted_when_the_client_disconnects_mid_data_and_after_RSET()
    {
        await using var host = await StartAsync();
        var budget = Budget(host);
        var part = Encoding.Latin1.GetBytes(Body(1024 * 1024));

        var client = await TransactionAsync(host);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendAsync(part);

        // The spill happens between two budget changes (staging reserved, memory buffer released).
        await budget.WaitUntilAsync(_ => SpillFiles().Length == 1, Timeout);
        await client.DisposeAsync();

        // The file is closed (deleted) before the buffer's bytes are released.
        await budget.WaitUntilAsync(inUse => inUse == 0, Timeout);
        Assert.Empty(SpillFiles());
        Assert.True(host.Spool.Stored.IsEmpty);

        // BDAT, then RSET: the transaction's file goes with it.
        await using var second = await TransactionAsync(host);
        await second.SendAsync([.. Encoding.ASCII.GetBytes("BDAT " + part.Length + "\r\n"), .. part]);
        Assert.Equal(250, (await second.ReadReplyAsync()).Code);
        Assert.Single(SpillFiles());
        Assert.Equal(250, (await second.CommandAsync("RSET")).Code);
        Assert.Empty(SpillFiles());
        Assert.Equal(0, budget.InUse);
        Assert.True(host.Spool.Stored.IsEmpty);
    }

    [Fact]
    public void The_threshold_and_the_spill_directory_are_validated_naming_the_key_and_the_directory_is_created()
    {
        var options = new IngressOptions { SpillDirectory = _spillDirectory };
        Assert.DoesNotContain(options.Validate(), f => f.Contains("MemoryBodyThreshold", StringComparison.Ordinal) || f.Contains("SpillDirectory", StringComparison.Ordinal));
        Assert.True(Directory.Exists(_spillDirectory));
        Assert.Empty(SpillFiles());

        options.MemoryBodyThreshold = 1000;
        Assert.Contains(options.Validate(), f => f.StartsWith("Ingress:MemoryBodyThreshold:", StringComparison.Ordinal));

        // A path below a regular file cannot be a directory.
        var file = Path.Combine(_spillDirectory, "not-a-directory");
        File.WriteAllText(file, "x");
        options = new IngressOptions { SpillDirectory = Path.Combine(file, "spill") };
        Assert.Contains(options.Validate(), f => f.StartsWith("Ingress:SpillDirectory:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_message_that_would_spill_past_MaxSpilledBytes_gets_452_4_3_1_and_leaves_no_file()
    {
        await using var host = await IngressHost.StartAsync(new()
        {
            ["Ingress:MemoryBodyThreshold"] = Threshold.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Ingress:SpillDirectory"] = _spillDirectory,
            ["Ingress:MaxSpilledBytes"] = (2 * Threshold).ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        var budget = Budget(host);
        await using var client = await TransactionAsync(host);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendAsync(Encoding.Latin1.GetBytes(Body(2 * 1024 * 1024) + ".\r\n"));
        var reply = await client.ReadReplyAsync();
        Assert.Equal(452, reply.Code);
        Assert.Equal("4.3.1", reply.Enhanced);
        Assert.Empty(SpillFiles());
        Assert.Equal(0, budget.Spilled);
        Assert.Equal(0, budget.InUse);
        Assert.True(host.Spool.Stored.IsEmpty);

        // The space is back: a message that fits is accepted.
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<a@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<b@example.org>")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendAsync(Encoding.Latin1.GetBytes(Body(400 * 1024) + ".\r\n"));
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(0, budget.Spilled);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_message_whose_last_octets_do_not_fit_MaxSpilledBytes_gets_452_4_3_1(bool bdat)
    {
        // Every full staging area fits the spill file; only the tail, written at the end of data, does not. Before, the
        // tail's failed write surfaced inside the commit (found for HTTP by the issue 7 review; SMTP had the same path).
        var body = Encoding.Latin1.GetBytes(Body(400 * 1024));
        await using var host = await IngressHost.StartAsync(new()
        {
            ["Ingress:MemoryBodyThreshold"] = Threshold.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Ingress:SpillDirectory"] = _spillDirectory,
            ["Ingress:MaxSpilledBytes"] = (body.Length - 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        var budget = Budget(host);
        await using var client = await TransactionAsync(host);
        Reply reply;
        if (bdat)
        {
            await client.SendAsync(Encoding.ASCII.GetBytes($"BDAT {body.Length} LAST\r\n"));
            await client.SendAsync(body);
            reply = await client.ReadReplyAsync();
        }
        else
        {
            Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
            await client.SendAsync([.. body, .. ".\r\n"u8]);
            reply = await client.ReadReplyAsync();
        }

        Assert.Equal((452, "4.3.1"), (reply.Code, reply.Enhanced));
        Assert.True(host.Spool.Stored.IsEmpty);
        Assert.Empty(SpillFiles());
        Assert.Equal(0, budget.Spilled);
        Assert.Equal(0, budget.InUse);

        // The session goes on.
        Assert.Equal(250, (await client.CommandAsync("NOOP")).Code);
    }
}
