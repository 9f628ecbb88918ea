using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.Chaos;

/// <summary>
/// One phase's load: SMTP clients sending uniquely marked messages (the id in <c>X-Chaos-Id</c>, the Subject and the
/// Message-ID) to Ingress on 127.0.0.1, paced or back to back, reconnecting when Ingress goes away. A message counts as
/// accepted only when its 250 reply to the end of data was read; one whose connection broke after the end of data
/// was sent, before a reply, is unconfirmed (it may or may not have been stored) and is never retried.
/// </summary>
internal sealed class MarkedLoad(ChaosPhase phase, string runTag, int smtpPort, byte[] body)
{
    public const string RecipientDomain = "chaos.test";
    public const string SenderDomain = "sender.chaos.test";

    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(60);

    private readonly ConcurrentDictionary<string, byte> _accepted = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _unconfirmed = new(StringComparer.Ordinal);
    private int _next;
    private int _sent;
    private int _refused;
    private int _connectFailures;

    public ChaosPhase Phase => phase;

    /// <summary>Ids whose end of data was answered 250.</summary>
    public ICollection<string> Accepted => _accepted.Keys;

    /// <summary>Ids whose end of data was sent but whose reply never came (the connection broke or timed out).</summary>
    public ICollection<string> Unconfirmed => _unconfirmed.Keys;

    /// <summary>Transactions started (MAIL sent).</summary>
    public int Sent => Volatile.Read(ref _sent);

    /// <summary>Transactions refused with a reply (4xx or 5xx at MAIL, RCPT, DATA or the end of data).</summary>
    public int Refused => Volatile.Read(ref _refused);

    /// <summary>Failed attempts to open a session (Ingress down or not listening yet).</summary>
    public int ConnectFailures => Volatile.Read(ref _connectFailures);

    public string IdOf(int index) => $"{runTag}-{phase.Name}-{index}";

    /// <summary>
    /// Sends until <see cref="ChaosPhase.Messages"/> are sent or <paramref name="stopSending"/> fires; a transaction in
    /// progress is finished either way. <paramref name="abort"/> ends everything at once.
    /// </summary>
    public async Task RunAsync(CancellationToken stopSending, CancellationToken abort)
    {
        var started = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, phase.Connections).Select(_ => Task.Run(() => ConnectionAsync(started, stopSending, abort), abort)));
    }

    private async Task ConnectionAsync(long started, CancellationToken stopSending, CancellationToken abort)
    {
        Session? session = null;
        try
        {
            while (!stopSending.IsCancellationRequested)
            {
                var index = Interlocked.Increment(ref _next) - 1;
                if (index >= phase.Messages)
                {
                    return;
                }

                if (phase.Rate is { } rate)
                {
                    var due = TimeSpan.FromSeconds(index / rate) - Stopwatch.GetElapsedTime(started);
                    if (due > TimeSpan.Zero)
                    {
                        try
                        {
                            await Task.Delay(due, stopSending);
                        }
                        catch (OperationCanceledException)
                        {
                            return;
                        }
                    }
                }

                while (session is null)
                {
                    session = await Session.OpenAsync(smtpPort, abort);
                    if (session is null)
                    {
                        Interlocked.Increment(ref _connectFailures);
                        if (stopSending.IsCancellationRequested)
                        {
                            return;
                        }

                        await Task.Delay(250, abort);
                    }
                }

                if (!await SendAsync(session, IdOf(index), index, abort))
                {
                    session.Dispose();
                    session = null;
                }
            }
        }
        finally
        {
            if (session is not null)
            {
                await session.QuitAsync();
                session.Dispose();
            }
        }
    }

    /// <summary>One transaction, MAIL/RCPT/DATA pipelined (RFC 2920). False when the session is no longer usable.</summary>
    private async Task<bool> SendAsync(Session session, string id, int index, CancellationToken abort)
    {
        var endOfDataSent = false;
        try
        {
            Interlocked.Increment(ref _sent);
            await session.WriteAsync($"MAIL FROM:<chaos@{SenderDomain}>\r\nRCPT TO:<user{index % 50}@{RecipientDomain}>\r\nDATA\r\n", abort);
            var mail = await session.ReplyAsync(abort);
            var rcpt = await session.ReplyAsync(abort);
            var data = await session.ReplyAsync(abort);
            if (!data.StartsWith("354", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _refused);
                if (mail.StartsWith("421", StringComparison.Ordinal) || rcpt.StartsWith("421", StringComparison.Ordinal) || data.StartsWith("421", StringComparison.Ordinal))
                {
                    return false;
                }

                await session.WriteAsync("RSET\r\n", abort);
                return (await session.ReplyAsync(abort)).StartsWith("250", StringComparison.Ordinal);
            }

            var headers = $"{ChaosSink.IdHeader}: {id}\r\nSubject: chaos {id}\r\nMessage-ID: <{id}@{SenderDomain}>\r\nFrom: <chaos@{SenderDomain}>\r\nTo: <user{index % 50}@{RecipientDomain}>\r\n";
            await session.WriteAsync(headers, abort);
            endOfDataSent = true;
            await session.WriteAsync(body, abort);
            var final = await session.ReplyAsync(abort);
            if (final.StartsWith("250", StringComparison.Ordinal))
            {
                _accepted.TryAdd(id, 0);
                return true;
            }

            Interlocked.Increment(ref _refused);
            return !final.StartsWith("421", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or SocketException or TimeoutException or ObjectDisposedException && !abort.IsCancellationRequested)
        {
            if (endOfDataSent)
            {
                _unconfirmed.TryAdd(id, 0);
            }
            else
            {
                Interlocked.Increment(ref _refused);
            }

            return false;
        }
    }

    /// <summary>A message body after the marked headers: the rest of the header block, text lines, the end of data.</summary>
    public static byte[] BuildBody(int size)
    {
        var builder = new StringBuilder("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
        var line = new string('x', 76);
        while (builder.Length < size)
        {
            builder.Append(line).Append("\r\n");
        }

        builder.Append(".\r\n");
        return Encoding.ASCII.GetBytes(builder.ToString());
    }

    private sealed class Session : IDisposable
    {
        private readonly TcpClient _client;
        private readonly NetworkStream _stream;
        private readonly LineReader _reader;

        private Session(TcpClient client)
        {
            _client = client;
            _stream = client.GetStream();
            _reader = new LineReader(_stream);
        }

        /// <summary>Connects, reads the greeting and says EHLO; null when any of it fails.</summary>
        public static async Task<Session?> OpenAsync(int port, CancellationToken abort)
        {
            var client = new TcpClient { NoDelay = true };
            Session? session = null;
            try
            {
                using var connect = CancellationTokenSource.CreateLinkedTokenSource(abort);
                connect.CancelAfter(TimeSpan.FromSeconds(10));
                await client.ConnectAsync(IPAddress.Loopback, port, connect.Token);
                session = new Session(client);
                if ((await session.ReplyAsync(abort)).StartsWith("220", StringComparison.Ordinal))
                {
                    await session.WriteAsync("EHLO chaos.test\r\n", abort);
                    if ((await session.ReplyAsync(abort)).StartsWith("250", StringComparison.Ordinal))
                    {
                        return session;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException or TimeoutException or OperationCanceledException && !abort.IsCancellationRequested)
            {
            }

            if (session is not null)
            {
                session.Dispose();
            }
            else
            {
                client.Dispose();
            }

            return null;
        }

        public ValueTask WriteAsync(string text, CancellationToken cancellationToken) => WriteAsync(Encoding.ASCII.GetBytes(text), cancellationToken);

        public ValueTask WriteAsync(byte[] bytes, CancellationToken cancellationToken) => _stream.WriteAsync(bytes, cancellationToken);

        /// <summary>Reads one (possibly multi-line) reply and returns its last line; a timeout or a close is an IOException.</summary>
        public async Task<string> ReplyAsync(CancellationToken abort)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(abort);
            timeout.CancelAfter(ReplyTimeout);
            try
            {
                while (true)
                {
                    var line = await _reader.ReadLineAsync(timeout.Token) ?? throw new IOException("connection closed");
                    if (line.Length < 4 || line[3] != '-')
                    {
                        return line;
                    }
                }
            }
            catch (OperationCanceledException) when (!abort.IsCancellationRequested)
            {
                throw new TimeoutException($"no reply within {ReplyTimeout.TotalSeconds:F0} s");
            }
        }

        public async Task QuitAsync()
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await WriteAsync("QUIT\r\n", timeout.Token);
                await _reader.ReadLineAsync(timeout.Token);
            }
            catch (Exception)
            {
            }
        }

        public void Dispose()
        {
            _reader.Dispose();
            _stream.Dispose();
            _client.Dispose();
        }
    }
}
