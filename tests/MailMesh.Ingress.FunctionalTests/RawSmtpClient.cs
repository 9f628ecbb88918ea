using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>A socket-level SMTP client for input no real client would send. Every read is bounded by a timeout.</summary>
internal sealed class RawSmtpClient : IAsyncDisposable
{
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(15);
    private readonly TcpClient _tcp;
    private Stream _stream;
    private readonly byte[] _buffer = new byte[8192];
    private readonly StringBuilder _pending = new();

    internal RawSmtpClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public static async Task<RawSmtpClient> ConnectAsync(IPEndPoint endpoint, bool readGreeting = true, bool implicitTls = false)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(endpoint);
        var client = new RawSmtpClient(tcp);
        if (implicitTls)
        {
            await client.UpgradeToTlsAsync();
        }

        if (readGreeting)
        {
            var greeting = await client.ReadReplyAsync();
            Assert.Equal(220, greeting.Code);
        }

        return client;
    }

    public async Task SendAsync(string text) => await SendAsync(Encoding.Latin1.GetBytes(text));

    public async Task SendUtf8Async(string text) => await SendAsync(Encoding.UTF8.GetBytes(text));

    /// <summary>Octets received from the server and not yet read as replies.</summary>
    public int Pending => _pending.Length;

    /// <summary>TLS handshake over the connection (after "220 Ready to start TLS", or at once for implicit TLS).</summary>
    public async Task UpgradeToTlsAsync()
    {
        var ssl = new System.Net.Security.SslStream(_stream, leaveInnerStreamOpen: true, TestCertificates.IsTestServer);
        using var timeout = new CancellationTokenSource(ReadTimeout);
        await ssl.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions { TargetHost = "mx.test.example" }, timeout.Token);
        _stream = ssl;
    }

    public async Task SendAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    /// <summary>Sends one command and reads its reply.</summary>
    public async Task<Reply> CommandAsync(string line)
    {
        await SendAsync(line + "\r\n");
        return await ReadReplyAsync();
    }

    public async Task<Reply> ReadReplyAsync()
    {
        var lines = new List<string>();
        while (true)
        {
            var line = await ReadLineAsync() ?? throw new IOException("connection closed before a complete reply; got: " + string.Join("|", lines));
            lines.Add(line);
            if (line.Length < 4 || line[3] != '-')
            {
                return new Reply(int.Parse(line[..3]), lines);
            }
        }
    }

    /// <summary>True when the server closes the connection (reads end) within the timeout, with no further reply.</summary>
    public async Task<bool> IsClosedAsync()
    {
        try
        {
            return await ReadLineAsync() is null;
        }
        catch (IOException)
        {
            return true;
        }
    }

    private async Task<string?> ReadLineAsync()
    {
        using var timeout = new CancellationTokenSource(ReadTimeout);
        while (true)
        {
            var text = _pending.ToString();
            var end = text.IndexOf("\r\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                _pending.Remove(0, end + 2);
                return text[..end];
            }

            var read = await _stream.ReadAsync(_buffer, timeout.Token);
            if (read == 0)
            {
                return null;
            }

            _pending.Append(Encoding.Latin1.GetString(_buffer, 0, read));
        }
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}

internal sealed record Reply(int Code, IReadOnlyList<string> Lines)
{
    public string Enhanced => Lines[^1].Length > 4 ? Lines[^1][4..].Split(' ')[0] : string.Empty;

    public string Text => string.Join("\n", Lines);

    public override string ToString() => Text;
}
