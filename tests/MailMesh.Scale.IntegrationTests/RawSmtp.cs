using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.Scale.IntegrationTests;

/// <summary>
/// A bare SMTP client over a socket, for what MailKit does not let a test do: stop in the middle of DATA, or read a
/// reply the server sends unprompted (421 on shutdown).
/// </summary>
internal sealed class RawSmtp : IDisposable
{
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(30);
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;

    public RawSmtp(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.ASCII);
    }

    public static async Task<RawSmtp> ConnectAsync(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint);
        var client = new RawSmtp(socket);
        var greeting = await client.ReadReplyAsync();
        Assert.StartsWith("220", greeting, StringComparison.Ordinal);
        return client;
    }

    /// <summary>Sends raw text as is (message content, without the terminating dot).</summary>
    public async Task SendAsync(string text) => await _stream.WriteAsync(Encoding.ASCII.GetBytes(text));

    /// <summary>Sends one line and returns the last line of the reply.</summary>
    public async Task<string> SendAndReadAsync(string line)
    {
        await SendAsync(line + "\r\n");
        return await ReadReplyAsync();
    }

    /// <summary>Sends one line and asserts the reply code.</summary>
    public async Task<string> ExpectAsync(string code, string line)
    {
        var reply = await SendAndReadAsync(line);
        Assert.True(reply.StartsWith(code, StringComparison.Ordinal), $"'{line.Split('\r')[0]}' got '{reply}', expected {code}");
        return reply;
    }

    /// <summary>Reads one reply (RFC 5321 §4.2.1: continuation lines have a hyphen after the code) and returns its last line.</summary>
    public async Task<string> ReadReplyAsync()
    {
        using var timeout = new CancellationTokenSource(ReplyTimeout);
        while (true)
        {
            var line = await _reader.ReadLineAsync(timeout.Token) ?? throw new IOException("the server closed the connection");
            if (line.Length < 4 || line[3] != '-')
            {
                return line;
            }
        }
    }

    public void Dispose()
    {
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
    }
}
