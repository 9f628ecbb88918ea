using System.Net.Sockets;
using System.Text;
using MailKit.Net.Pop3;
using MailKit.Security;

namespace MailMesh.Mailbox.FunctionalTests;

/// <summary>POP3 (RFC 1939, 2449, 2595, 5034) against MailKit's Pop3Client and raw sockets; bytes compared with the store.</summary>
public sealed class Pop3Tests
{
    private static Pop3Client Client() => new() { ServerCertificateValidationCallback = MailboxHost.IsTestCertificate };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task MailKit_retrieves_the_stored_bytes_after_STLS_and_deletes_at_QUIT_only(bool postgres)
    {
        await using var host = await MailboxHost.StartAsync(postgres: postgres);
        var first = await host.DeliverAsync(Samples.Plain);
        var second = await host.DeliverAsync(Samples.Multipart);
        using (var client = Client())
        {
            await client.ConnectAsync("127.0.0.1", host.Pop3.Port, SecureSocketOptions.StartTls);
            Assert.True(client.Capabilities.HasFlag(Pop3Capabilities.UIDL));
            await client.AuthenticateAsync(MailboxHost.User, MailboxHost.Password);
            Assert.Equal(2, client.Count);
            Assert.Equal(first, await ReadAsync(client, 0));
            Assert.Equal(second, await ReadAsync(client, 1));
            Assert.Equal([first.Length, second.Length], await client.GetMessageSizesAsync());
            var uids = await client.GetMessageUidsAsync();
            Assert.Equal(2, uids.Distinct().Count());
            await client.DeleteMessageAsync(0);
        }

        // Disconnected without QUIT: nothing deleted.
        using (var client = Client())
        {
            await client.ConnectAsync("127.0.0.1", host.Pop3.Port, SecureSocketOptions.StartTls);
            await client.AuthenticateAsync(MailboxHost.User, MailboxHost.Password);
            Assert.Equal(2, client.Count);
            await client.DeleteMessageAsync(0);
            await client.DisconnectAsync(quit: true);
        }

        using (var client = Client())
        {
            await client.ConnectAsync("127.0.0.1", host.Pop3s.Port, SecureSocketOptions.SslOnConnect);
            await client.AuthenticateAsync(MailboxHost.User, MailboxHost.Password);
            Assert.Equal(1, client.Count);
            Assert.Equal(second, await ReadAsync(client, 0));
            await client.DisconnectAsync(quit: true);
        }
    }

    private static async Task<byte[]> ReadAsync(Pop3Client client, int index)
    {
        await using var stream = await client.GetStreamAsync(index);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }

    [Fact]
    public async Task The_maildrop_lock_refuses_a_second_session_until_the_first_quits()
    {
        await using var host = await MailboxHost.StartAsync(new() { ["Mailbox:AllowPlaintextAuth"] = "true" });
        await host.DeliverAsync(Samples.Plain);
        using var first = Client();
        await first.ConnectAsync("127.0.0.1", host.Pop3.Port, SecureSocketOptions.StartTls);
        await first.AuthenticateAsync(MailboxHost.User, MailboxHost.Password);
        await first.DeleteMessageAsync(0);

        // RFC 2449 §8.1.1: [IN-USE]; the second session stays in the AUTHORIZATION state and may try again.
        using var second = await RawClient.ConnectAsync(host.Pop3);
        await second.LineAsync();
        Assert.Equal("+OK", await second.CommandAsync("USER " + MailboxHost.User));
        Assert.StartsWith("-ERR [IN-USE]", await second.CommandAsync("PASS " + MailboxHost.Password), StringComparison.Ordinal);
        await first.DisconnectAsync(quit: true);
        Assert.Equal("+OK", await second.CommandAsync("USER " + MailboxHost.User));
        Assert.Equal("+OK maildrop has 0 messages (0 octets)", await second.CommandAsync("PASS " + MailboxHost.Password));
    }

    [Fact]
    public async Task Raw_session_follows_RFC_1939()
    {
        await using var host = await MailboxHost.StartAsync(new() { ["Mailbox:AllowPlaintextAuth"] = "true" });
        var stored = await host.DeliverAsync(Samples.Plain);
        using var raw = await RawClient.ConnectAsync(host.Pop3);
        Assert.StartsWith("+OK", await raw.LineAsync(), StringComparison.Ordinal);
        Assert.Equal("-ERR Not authenticated", await raw.CommandAsync("STAT"));
        Assert.Equal("-ERR USER first", await raw.CommandAsync("PASS x"));
        Assert.Equal("+OK", await raw.CommandAsync("USER " + MailboxHost.User));
        Assert.Equal("-ERR [AUTH] Authentication failed", await raw.CommandAsync("PASS wrong"));
        Assert.Equal("+OK", await raw.CommandAsync("USER " + MailboxHost.User));
        Assert.StartsWith("+OK maildrop has 1 messages", await raw.CommandAsync("PASS " + MailboxHost.Password), StringComparison.Ordinal);
        Assert.Equal("+OK 1 " + stored.Length, await raw.CommandAsync("STAT"));
        Assert.Equal("+OK 1 " + stored.Length, await raw.CommandAsync("LIST 1"));
        Assert.Equal("-ERR No such message", await raw.CommandAsync("LIST 2"));

        // RFC 1939 §3: byte-stuffed lines that start with ".", ending in CRLF.CRLF.
        Assert.Equal("+OK " + stored.Length + " octets", await raw.CommandAsync("RETR 1"));
        var lines = await raw.MultilineAsync();
        Assert.Contains("..a line that starts with a dot", lines);
        Assert.Contains("...two dots", lines);
        Assert.Contains("..", lines);

        // TOP 1 1: the header, the blank line and one body line.
        Assert.StartsWith("+OK", await raw.CommandAsync("TOP 1 1"), StringComparison.Ordinal);
        var top = await raw.MultilineAsync();
        Assert.Equal("Hi Alice,", top[^1]);
        Assert.Equal(string.Empty, top[^2]);

        Assert.Equal("+OK message 1 deleted", await raw.CommandAsync("DELE 1"));
        Assert.Equal("-ERR Message 1 already deleted", await raw.CommandAsync("RETR 1"));
        Assert.Equal("+OK 0 0", await raw.CommandAsync("STAT"));
        Assert.StartsWith("+OK maildrop has 1 messages", await raw.CommandAsync("RSET"), StringComparison.Ordinal);
        Assert.Equal("-ERR Unknown command", await raw.CommandAsync("XYZZY"));
        Assert.Equal("-ERR Line too long", await raw.CommandAsync("NOOP " + new string('a', 300)));
        Assert.Equal("+OK", await raw.CommandAsync("NOOP"));
        Assert.StartsWith("+OK", await raw.CommandAsync("QUIT"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plaintext_login_needs_TLS_unless_allowed()
    {
        await using var host = await MailboxHost.StartAsync();
        using var raw = await RawClient.ConnectAsync(host.Pop3);
        await raw.LineAsync();
        Assert.StartsWith("-ERR [AUTH]", await raw.CommandAsync("USER " + MailboxHost.User), StringComparison.Ordinal);
        Assert.StartsWith("-ERR [AUTH]", await raw.CommandAsync("AUTH PLAIN AGFsaWNlAHg="), StringComparison.Ordinal);
        Assert.Equal("+OK Capability list follows", await raw.CommandAsync("CAPA"));
        var capabilities = await raw.MultilineAsync();
        Assert.Contains("STLS", capabilities);
        Assert.DoesNotContain("USER", capabilities);
    }

    [Fact]
    public async Task AUTH_PLAIN_with_and_without_initial_response()
    {
        await using var host = await MailboxHost.StartAsync(new() { ["Mailbox:AllowPlaintextAuth"] = "true" });
        var credentials = Convert.ToBase64String(Encoding.UTF8.GetBytes("\0" + MailboxHost.User + "\0" + MailboxHost.Password));
        using (var raw = await RawClient.ConnectAsync(host.Pop3))
        {
            await raw.LineAsync();
            Assert.Equal("+ ", await raw.CommandAsync("AUTH PLAIN"));
            Assert.StartsWith("+OK maildrop", await raw.CommandAsync(credentials), StringComparison.Ordinal);
            Assert.StartsWith("+OK", await raw.CommandAsync("QUIT"), StringComparison.Ordinal);
        }

        using (var raw = await RawClient.ConnectAsync(host.Pop3))
        {
            await raw.LineAsync();
            Assert.StartsWith("+OK maildrop", await raw.CommandAsync("AUTH PLAIN " + credentials), StringComparison.Ordinal);
        }
    }
}

/// <summary>A line-oriented raw client for protocol checks MailKit would hide.</summary>
internal sealed class RawClient : IDisposable
{
    private readonly TcpClient _tcp;
    private readonly StreamReader _reader;
    private readonly Stream _stream;

    private RawClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        _reader = new StreamReader(_stream, Encoding.Latin1);
    }

    public static async Task<RawClient> ConnectAsync(System.Net.IPEndPoint endpoint)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(endpoint);
        return new RawClient(tcp);
    }

    public async Task<string> LineAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await _reader.ReadLineAsync(timeout.Token) ?? throw new IOException("Connection closed");
    }

    public async Task SendAsync(string text)
    {
        await _stream.WriteAsync(Encoding.Latin1.GetBytes(text));
        await _stream.FlushAsync();
    }

    public async Task SendAsync(byte[] octets)
    {
        await _stream.WriteAsync(octets);
        await _stream.FlushAsync();
    }

    public async Task<string> CommandAsync(string line)
    {
        await SendAsync(line + "\r\n");
        return await LineAsync();
    }

    /// <summary>The lines of a POP3 multi-line response up to ".", as sent (still byte-stuffed).</summary>
    public async Task<List<string>> MultilineAsync()
    {
        var lines = new List<string>();
        while (await LineAsync() is var line && line != ".")
        {
            lines.Add(line);
        }

        return lines;
    }

    /// <summary>IMAP: lines until the tagged response for <paramref name="tag"/> (returned last).</summary>
    public async Task<List<string>> UntilTaggedAsync(string tag)
    {
        var lines = new List<string>();
        while (true)
        {
            var line = await LineAsync();
            lines.Add(line);
            if (line.StartsWith(tag + " ", StringComparison.Ordinal))
            {
                return lines;
            }
        }
    }

    public void Dispose()
    {
        _reader.Dispose();
        _tcp.Dispose();
    }
}
