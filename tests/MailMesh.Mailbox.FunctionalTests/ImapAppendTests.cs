using System.Text;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Security;

namespace MailMesh.Mailbox.FunctionalTests;

/// <summary>
/// APPEND of large message literals (RFC 9051 §6.3.12): streamed to a spill file and into the store as they arrive,
/// stored byte for byte, refused with <c>NO [TOOBIG]</c> over <c>Mailbox:MaxMessageSize</c> with the session still in
/// step afterwards.
/// </summary>
public sealed class ImapAppendTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    /// <summary>A message of <paramref name="size"/> octets with every octet value but NUL in its body, CRLF lines.</summary>
    internal static byte[] LargeMessage(int size, int seed)
    {
        var header = Encoding.ASCII.GetBytes($"From: alice@test.example\r\nTo: bob@example.org\r\nSubject: large {seed}\r\nContent-Type: application/octet-stream\r\n\r\n");
        var message = new byte[size];
        header.CopyTo(message, 0);
        var random = new Random(seed);
        for (var i = header.Length; i < size; i++)
        {
            var octet = (byte)random.Next(1, 256);
            message[i] = (i % 78) switch
            {
                76 => (byte)'\r',
                77 => (byte)'\n',
                _ => octet is (byte)'\r' or (byte)'\n' ? (byte)'x' : octet,
            };
        }

        message[^2] = (byte)'\r';
        message[^1] = (byte)'\n';
        return message;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_few_MiB_literal_is_stored_byte_for_byte(bool postgres)
    {
        await using var host = await MailboxHost.StartAsync(new() { ["Mailbox:AllowPlaintextAuth"] = "true" }, postgres);
        using var raw = await RawClient.ConnectAsync(host.Imap);
        await raw.LineAsync();
        Assert.StartsWith("a1 OK", await raw.CommandAsync($"a1 LOGIN {MailboxHost.User} \"{MailboxHost.Password}\""), StringComparison.Ordinal);

        // A synchronizing literal (the server asks for it), then a non-synchronizing one (LITERAL-, RFC 7888).
        var first = LargeMessage(5 * 1024 * 1024 + 17, 1);
        Assert.StartsWith("+ ", await raw.CommandAsync("a2 APPEND INBOX (\\Seen) {" + first.Length + "}"), StringComparison.Ordinal);
        await raw.SendAsync(first);
        await raw.SendAsync("\r\n");
        var appended = await raw.LineAsync();
        Assert.StartsWith("a2 OK [APPENDUID ", appended, StringComparison.Ordinal);

        var second = LargeMessage(3 * 1024 * 1024, 2);
        await raw.SendAsync("a3 APPEND INBOX {" + second.Length + "+}\r\n");
        await raw.SendAsync(second);
        await raw.SendAsync("\r\n");
        Assert.StartsWith("a3 OK [APPENDUID ", await raw.LineAsync(), StringComparison.Ordinal);

        // The store holds exactly the octets sent, and MailKit fetches them back (BODY[]).
        var inbox = (await host.Store.GetFolderAsync(host.Account.Id, "INBOX", default))!;
        var listed = await host.Store.ListMessagesAsync(host.Account.Id, inbox.Id, 1, 10, default);
        Assert.Equal([first.LongLength, second.LongLength], listed.Select(m => m.Size));
        Assert.Equal(first, await ReadStoredAsync(host, inbox.Id, listed[0].Uid));
        Assert.Equal(second, await ReadStoredAsync(host, inbox.Id, listed[1].Uid));
        Assert.Equal(first.Length + (long)second.Length, (await host.Store.GetAccountAsync(MailboxHost.User, default))!.UsedBytes);

        using var client = new ImapClient { ServerCertificateValidationCallback = MailboxHost.IsTestCertificate };
        await client.ConnectAsync("127.0.0.1", host.Imap.Port, SecureSocketOptions.StartTls);
        await client.AuthenticateAsync(MailboxHost.User, MailboxHost.Password);
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);
        await using var fetched = await client.Inbox.GetStreamAsync(new UniqueId((uint)listed[0].Uid), string.Empty);
        using var copy = new MemoryStream();
        await fetched.CopyToAsync(copy);
        Assert.Equal(first, copy.ToArray());
        await client.DisconnectAsync(true);
    }

    [Fact]
    public async Task Over_the_maximum_message_size_is_refused_and_the_session_stays_in_step()
    {
        await using var host = await MailboxHost.StartAsync(new()
        {
            ["Mailbox:AllowPlaintextAuth"] = "true",
            ["Mailbox:MaxMessageSize"] = (1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        using var raw = await RawClient.ConnectAsync(host.Imap);
        await raw.LineAsync();
        Assert.StartsWith("a1 OK", await raw.CommandAsync($"a1 LOGIN {MailboxHost.User} \"{MailboxHost.Password}\""), StringComparison.Ordinal);

        // Synchronizing: refused before the client sends a single octet of it (RFC 9051 §7.1 TOOBIG).
        Assert.Equal("a2 NO [TOOBIG] Literal too large", await raw.CommandAsync("a2 APPEND INBOX {1048577}"));

        // Non-synchronizing (LITERAL-): the octets arrive anyway; they are skipped, not kept, and answered.
        var tooLarge = LargeMessage(2 * 1024 * 1024, 3);
        await raw.SendAsync("a3 APPEND INBOX {" + tooLarge.Length + "+}\r\n");
        await raw.SendAsync(tooLarge);
        await raw.SendAsync("\r\n");
        var refused = await raw.UntilTaggedAsync("a3");
        Assert.StartsWith("a3 NO [TOOBIG]", refused[^1], StringComparison.Ordinal);

        // Exactly at the limit is accepted, and the connection is still in step for the next command.
        var atLimit = LargeMessage(1024 * 1024, 4);
        Assert.StartsWith("+ ", await raw.CommandAsync("a4 APPEND INBOX {" + atLimit.Length + "}"), StringComparison.Ordinal);
        await raw.SendAsync(atLimit);
        await raw.SendAsync("\r\n");
        Assert.StartsWith("a4 OK [APPENDUID ", await raw.LineAsync(), StringComparison.Ordinal);
        Assert.Equal("a5 OK NOOP completed", await raw.CommandAsync("a5 NOOP"));
        var inbox = (await host.Store.GetFolderAsync(host.Account.Id, "INBOX", default))!;
        var listed = Assert.Single(await host.Store.ListMessagesAsync(host.Account.Id, inbox.Id, 1, 10, default));
        Assert.Equal(atLimit, await ReadStoredAsync(host, inbox.Id, listed.Uid));
    }

    internal static async Task<byte[]> ReadStoredAsync(MailboxHost host, long folderId, long uid)
    {
        await using var stream = await host.Store.OpenMessageAsync(host.Account.Id, folderId, uid, default);
        Assert.NotNull(stream);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy).WaitAsync(Wait);
        return copy.ToArray();
    }
}

/// <summary>Tests that measure the process's allocations: run alone, after the parallel ones.</summary>
[CollectionDefinition(nameof(AllocationSensitive), DisableParallelization = true)]
public sealed class AllocationSensitive;

/// <summary>The defect this guards: APPEND read its message literal into one array (and the store copied it again).</summary>
[Collection(nameof(AllocationSensitive))]
public sealed class ImapAppendMemoryTests
{
    [Fact]
    public async Task A_16_MiB_APPEND_allocates_far_less_than_the_message()
    {
        await using var host = await MailboxHost.StartAsync(new() { ["Mailbox:AllowPlaintextAuth"] = "true" });
        using var raw = await RawClient.ConnectAsync(host.Imap);
        await raw.LineAsync();
        Assert.StartsWith("a1 OK", await raw.CommandAsync($"a1 LOGIN {MailboxHost.User} \"{MailboxHost.Password}\""), StringComparison.Ordinal);
        var small = ImapAppendTests.LargeMessage(256 * 1024, 5);
        Assert.StartsWith("+ ", await raw.CommandAsync("a2 APPEND INBOX {" + small.Length + "}"), StringComparison.Ordinal);
        await raw.SendAsync(small);
        await raw.SendAsync("\r\n");
        Assert.StartsWith("a2 OK", await raw.LineAsync(), StringComparison.Ordinal);

        // The whole process's allocations (server and this client, which sends from an array made beforehand).
        var message = ImapAppendTests.LargeMessage(16 * 1024 * 1024, 6);
        var before = GC.GetTotalAllocatedBytes(precise: true);
        Assert.StartsWith("+ ", await raw.CommandAsync("a3 APPEND INBOX {" + message.Length + "}"), StringComparison.Ordinal);
        await raw.SendAsync(message);
        await raw.SendAsync("\r\n");
        Assert.StartsWith("a3 OK [APPENDUID ", await raw.LineAsync(), StringComparison.Ordinal);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(allocated < message.Length / 2, $"APPEND of {message.Length} octets allocated {allocated} bytes");

        var inbox = (await host.Store.GetFolderAsync(host.Account.Id, "INBOX", default))!;
        var listed = await host.Store.ListMessagesAsync(host.Account.Id, inbox.Id, 1, 10, default);
        Assert.Equal(message, await ImapAppendTests.ReadStoredAsync(host, inbox.Id, listed[^1].Uid));
    }
}
