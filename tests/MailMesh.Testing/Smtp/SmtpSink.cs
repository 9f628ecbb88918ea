using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace MailMesh.Testing.Smtp;

/// <summary>
/// A real SMTP server on loopback for tests, with scriptable replies. It records every transaction (envelope, the
/// DATA bytes exactly as they came off the wire and unstuffed), counts connections and concurrent sessions, and lets
/// a test await N messages with a timeout. Several sinks may share a port on different loopback addresses
/// (127.0.0.2, 127.0.0.3, ... need no setup on Linux), the way MX hosts share port 25.
/// </summary>
/// <remarks>Scripted replies are whole reply lines, e.g. "550 5.1.1 No such user"; set them before mail arrives.</remarks>
public sealed class SmtpSink : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly Lock _gate = new();
    private readonly List<SinkMessage> _messages = [];
    private readonly List<(int Count, TaskCompletionSource<IReadOnlyList<SinkMessage>> Waiter)> _waiters = [];
    private readonly ConcurrentQueue<string> _commands = new();
    private readonly ConcurrentDictionary<int, Task> _sessions = new();
    private int _connections;
    private int _active;
    private int _maxActive;

    private SmtpSink(TcpListener listener)
    {
        _listener = listener;
        EndPoint = (IPEndPoint)listener.LocalEndpoint;
        _acceptLoop = AcceptAsync();
    }

    public IPEndPoint EndPoint { get; }

    public IPAddress Address => EndPoint.Address;

    public int Port => EndPoint.Port;

    /// <summary>Name in the greeting and EHLO reply.</summary>
    public string HostName { get; set; } = "sink.test";

    // ---- Script ------------------------------------------------------------------------------------------------

    /// <summary>The greeting; e.g. "421 4.3.2 Not now" to refuse the session (the sink then closes).</summary>
    public string? Greeting { get; set; }

    /// <summary>Reply to EHLO instead of the capability list, e.g. "502 5.5.1 Unrecognised" to force HELO.</summary>
    public string? EhloReply { get; set; }

    /// <summary>Reply to MAIL FROM, e.g. "451 4.3.0 Try later".</summary>
    public string? MailReply { get; set; }

    /// <summary>Replies to RCPT TO per recipient address (case-insensitive); others get 250.</summary>
    public ConcurrentDictionary<string, string> RecipientReplies { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Recipients accepted per transaction; later ones get "452 4.5.3 Too many recipients" (RFC 5321 §4.5.3.1.10).</summary>
    public int MaxRecipients { get; set; }

    /// <summary>Reply to the DATA command itself instead of 354.</summary>
    public string? DataCommandReply { get; set; }

    /// <summary>Reply after the final dot (or BDAT LAST), e.g. "452 4.3.1 Out of space".</summary>
    public string? DataReply { get; set; }

    /// <summary>
    /// Scripted replies to the end of data, one per transaction in arrival order (then <see cref="DataReply"/>): a
    /// destination that throttles the first few messages, for example.
    /// </summary>
    public ConcurrentQueue<string> ScriptedDataReplies { get; } = new();

    /// <summary>Close the connection after the final dot without replying.</summary>
    public bool CloseAfterData { get; set; }

    /// <summary>Wait this long before the reply to the final dot (keeps sessions overlapping in concurrency tests).</summary>
    public TimeSpan DataReplyDelay { get; set; }

    /// <summary>Wait this long before the reply to MAIL FROM (a slow server, before anything could be delivered).</summary>
    public TimeSpan MailReplyDelay { get; set; }

    /// <summary>The EHLO keywords announced.</summary>
    public List<string> Extensions { get; } = ["PIPELINING", "8BITMIME", "SIZE 10485760", "ENHANCEDSTATUSCODES"];

    /// <summary>
    /// The server certificate (with its private key). When set, STARTTLS (RFC 3207) is announced before TLS and the
    /// session is upgraded on request.
    /// </summary>
    public X509Certificate2? Tls { get; set; }

    /// <summary>Reply to STARTTLS instead of "220", e.g. "454 4.7.0 TLS not available" (the session stays in clear).</summary>
    public string? StartTlsReply { get; set; }

    /// <summary>Answer STARTTLS with 220, then send garbage instead of a TLS handshake and close (a broken TLS stack).</summary>
    public bool FailTlsHandshake { get; set; }

    /// <summary>EHLO keywords announced only inside TLS (e.g. "REQUIRETLS", RFC 8689 §3).</summary>
    public List<string> TlsExtensions { get; } = [];

    // ---- Observations ------------------------------------------------------------------------------------------

    /// <summary>TCP connections accepted so far.</summary>
    public int ConnectionCount => Volatile.Read(ref _connections);

    /// <summary>Sessions open right now.</summary>
    public int ActiveSessions => Volatile.Read(ref _active);

    /// <summary>Most sessions ever open at once.</summary>
    public int MaxConcurrentSessions => Volatile.Read(ref _maxActive);

    /// <summary>Every command line received, across connections, in arrival order (prefixed "#conn ").</summary>
    public IReadOnlyList<string> Commands => [.. _commands];

    public IReadOnlyList<SinkMessage> Messages
    {
        get
        {
            lock (_gate)
            {
                return [.. _messages];
            }
        }
    }

    /// <summary>Starts a sink on <paramref name="address"/> (default 127.0.0.1) and <paramref name="port"/> (0: any free).</summary>
    public static SmtpSink Start(IPAddress? address = null, int port = 0)
    {
        var listener = new TcpListener(address ?? IPAddress.Loopback, port);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start(128);
        return new SmtpSink(listener);
    }

    /// <summary>Starts a sink on 127.0.0.1 and <paramref name="count"/> - 1 more on 127.0.0.2, 127.0.0.3, ..., all on one port.</summary>
    public static IReadOnlyList<SmtpSink> StartOnSharedPort(int count)
    {
        for (var attempt = 0; ; attempt++)
        {
            var first = Start();
            var sinks = new List<SmtpSink> { first };
            try
            {
                for (var i = 1; i < count; i++)
                {
                    sinks.Add(Start(new IPAddress([127, 0, 0, (byte)(i + 1)]), first.Port));
                }

                return sinks;
            }
            catch (SocketException) when (attempt < 5)
            {
                foreach (var sink in sinks)
                {
                    sink.DisposeAsync().AsTask().GetAwaiter().GetResult();
                }
            }
        }
    }

    /// <summary>Completes when at least <paramref name="count"/> messages have arrived; fails after <paramref name="timeout"/>.</summary>
    public async Task<IReadOnlyList<SinkMessage>> WaitForMessagesAsync(int count, TimeSpan? timeout = null)
    {
        TaskCompletionSource<IReadOnlyList<SinkMessage>> waiter;
        lock (_gate)
        {
            if (_messages.Count >= count)
            {
                return [.. _messages];
            }

            waiter = new TaskCompletionSource<IReadOnlyList<SinkMessage>>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((count, waiter));
        }

        try
        {
            return await waiter.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Sink {EndPoint} received {Messages.Count} of {count} messages in time. Commands:\n{string.Join('\n', Commands)}");
        }
    }

    private void Record(SinkMessage message)
    {
        lock (_gate)
        {
            _messages.Add(message);
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_messages.Count >= _waiters[i].Count)
                {
                    _waiters[i].Waiter.TrySetResult([.. _messages]);
                    _waiters.RemoveAt(i);
                }
            }
        }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            var id = Interlocked.Increment(ref _connections);
            var active = Interlocked.Increment(ref _active);
            int max;
            while (active > (max = Volatile.Read(ref _maxActive)) && Interlocked.CompareExchange(ref _maxActive, active, max) != max)
            {
            }

            _sessions[id] = Task.Run(async () =>
            {
                try
                {
                    await RunSessionAsync(id, socket, _stop.Token);
                }
                catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
                {
                }
                finally
                {
                    Interlocked.Decrement(ref _active);
                    socket.Dispose();
                    _sessions.TryRemove(id, out _);
                }
            });
        }
    }

    private async Task RunSessionAsync(int id, Socket socket, CancellationToken cancellationToken)
    {
        Stream stream = new NetworkStream(socket, ownsSocket: false);
        await using var disposeStream = stream;
        await using var tlsHolder = new TlsHolder();
        SslStream? tls = null;
        var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(leaveOpen: true));
        var writer = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));

        async Task Reply(string line)
        {
            await writer.WriteAsync(Encoding.UTF8.GetBytes(line + "\r\n"), cancellationToken);
        }

        await Reply(Greeting ?? $"220 {HostName} ESMTP MailMesh test sink");
        if (Greeting is not null && Greeting.StartsWith("421", StringComparison.Ordinal))
        {
            return;
        }

        var refused = Greeting is not null && !Greeting.StartsWith('2');
        var remote = (socket.RemoteEndPoint as IPEndPoint)?.Address;
        string? helo = null;
        string? mailFrom = null;
        var mailParameters = string.Empty;
        var recipients = new List<string>();
        var rcptCount = 0;
        var chunks = new ArrayBufferWriter<byte>();
        var chunkCount = 0;

        void ResetTransaction()
        {
            mailFrom = null;
            mailParameters = string.Empty;
            recipients.Clear();
            rcptCount = 0;
            chunks = new ArrayBufferWriter<byte>();
            chunkCount = 0;
        }

        while (true)
        {
            var line = await ReadLineAsync(reader, cancellationToken);
            if (line is null)
            {
                return;
            }

            _commands.Enqueue($"#{id} {line}");
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            var verb = (space < 0 ? line : line[..space]).ToUpperInvariant();
            var argument = space < 0 ? string.Empty : line[(space + 1)..];

            if (verb == "QUIT")
            {
                await Reply("221 2.0.0 Bye");
                return;
            }

            if (refused)
            {
                await Reply("503 5.5.1 Session refused");
                continue;
            }

            switch (verb)
            {
                case "EHLO":
                    ResetTransaction();
                    helo = argument;
                    if (EhloReply is not null)
                    {
                        await Reply(EhloReply);
                        break;
                    }

                    var lines = new List<string> { HostName + " greets " + argument };
                    lines.AddRange(Extensions);
                    if (tls is null && Tls is not null)
                    {
                        lines.Add("STARTTLS");
                    }

                    if (tls is not null)
                    {
                        lines.AddRange(TlsExtensions);
                    }

                    for (var i = 0; i < lines.Count; i++)
                    {
                        await Reply((i == lines.Count - 1 ? "250 " : "250-") + lines[i]);
                    }

                    break;
                case "STARTTLS" when Tls is not null && tls is null:
                    if (StartTlsReply is not null)
                    {
                        await Reply(StartTlsReply);
                        break;
                    }

                    await Reply("220 2.0.0 Ready to start TLS");
                    if (FailTlsHandshake)
                    {
                        await writer.WriteAsync("this is not a TLS server hello\r\n"u8.ToArray(), cancellationToken);
                        return;
                    }

                    // RFC 3207 §4.2: the session starts over; the pipes are rebuilt over the TLS stream.
                    await reader.CompleteAsync();
                    await writer.CompleteAsync();
                    tls = tlsHolder.Stream = new SslStream(stream, leaveInnerStreamOpen: true);
                    await tls.AuthenticateAsServerAsync(
                        new SslServerAuthenticationOptions { ServerCertificate = Tls, ClientCertificateRequired = false }, cancellationToken);
                    reader = PipeReader.Create(tls, new StreamPipeReaderOptions(leaveOpen: true));
                    writer = PipeWriter.Create(tls, new StreamPipeWriterOptions(leaveOpen: true));
                    ResetTransaction();
                    break;
                case "HELO":
                    ResetTransaction();
                    helo = argument;
                    await Reply("250 " + HostName);
                    break;
                case "RSET":
                    ResetTransaction();
                    await Reply("250 2.0.0 OK");
                    break;
                case "NOOP":
                    await Reply("250 2.0.0 OK");
                    break;
                case "MAIL":
                    if (MailReplyDelay > TimeSpan.Zero)
                    {
                        await Task.Delay(MailReplyDelay, cancellationToken);
                    }

                    if (MailReply is not null)
                    {
                        await Reply(MailReply);
                        break;
                    }

                    ResetTransaction();
                    (mailFrom, mailParameters) = ParsePath(argument, "FROM:");
                    await Reply("250 2.1.0 Sender OK");
                    break;
                case "RCPT":
                    if (mailFrom is null)
                    {
                        await Reply("503 5.5.1 MAIL first");
                        break;
                    }

                    var (recipient, _) = ParsePath(argument, "TO:");
                    rcptCount++;
                    string rcptReply;
                    if (MaxRecipients > 0 && rcptCount > MaxRecipients)
                    {
                        rcptReply = "452 4.5.3 Too many recipients";
                    }
                    else
                    {
                        rcptReply = RecipientReplies.TryGetValue(recipient, out var scripted) ? scripted : "250 2.1.5 Recipient OK";
                    }

                    if (rcptReply.StartsWith('2'))
                    {
                        recipients.Add(recipient);
                    }

                    await Reply(rcptReply);
                    break;
                case "DATA":
                    if (DataCommandReply is not null)
                    {
                        await Reply(DataCommandReply);
                        break;
                    }

                    if (mailFrom is null || recipients.Count == 0)
                    {
                        await Reply("554 5.5.1 No valid recipients");
                        break;
                    }

                    await Reply("354 Go ahead, end with <CRLF>.<CRLF>");
                    var raw = await ReadDataAsync(reader, cancellationToken);
                    if (raw is null)
                    {
                        return;
                    }

                    if (!await FinishAsync(raw, Unstuff(raw), chunked: false))
                    {
                        return;
                    }

                    break;
                case "BDAT":
                    var parts = argument.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    var size = long.Parse(parts[0], CultureInfo.InvariantCulture);
                    var last = parts.Length > 1 && parts[1].Equals("LAST", StringComparison.OrdinalIgnoreCase);
                    var chunk = await ReadExactlyAsync(reader, size, cancellationToken);
                    if (chunk is null)
                    {
                        return;
                    }

                    chunks.Write(chunk);
                    chunkCount++;
                    if (!last)
                    {
                        await Reply($"250 2.0.0 {size} octets received");
                        break;
                    }

                    if (mailFrom is null || recipients.Count == 0)
                    {
                        await Reply("554 5.5.1 No valid recipients");
                        ResetTransaction();
                        break;
                    }

                    var all = chunks.WrittenSpan.ToArray();
                    if (!await FinishAsync(all, all, chunked: true))
                    {
                        return;
                    }

                    break;
                default:
                    await Reply("500 5.5.1 Unrecognised command");
                    break;
            }
        }

        async Task<bool> FinishAsync(byte[] raw, byte[] data, bool chunked)
        {
            if (DataReplyDelay > TimeSpan.Zero)
            {
                await Task.Delay(DataReplyDelay, cancellationToken);
            }

            var reply = CloseAfterData ? null : ScriptedDataReplies.TryDequeue(out var scripted) ? scripted : DataReply ?? "250 2.0.0 Queued";
            Record(new SinkMessage
            {
                ConnectionId = id,
                MailFrom = mailFrom!,
                MailParameters = mailParameters,
                Recipients = [.. recipients],
                RawData = raw,
                Data = data,
                Reply = reply,
                Chunked = chunked,
                Tls = tls is not null,
                ChunkCount = chunked ? chunkCount : 0,
                ClientAddress = remote,
                Helo = helo,
            });
            ResetTransaction();
            if (reply is null)
            {
                return false;
            }

            await Reply(reply);
            return true;
        }
    }

    private static (string Path, string Parameters) ParsePath(string argument, string prefix)
    {
        var rest = argument.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) ? argument[prefix.Length..].TrimStart() : argument;
        var close = rest.IndexOf('>', StringComparison.Ordinal);
        if (!rest.StartsWith('<') || close < 0)
        {
            return (rest, string.Empty);
        }

        return (rest[1..close], rest[(close + 1)..].Trim());
    }

    private static async Task<string?> ReadLineAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            var position = buffer.PositionOf((byte)'\n');
            if (position is not null)
            {
                var line = buffer.Slice(0, position.Value);
                var text = Encoding.UTF8.GetString(line).TrimEnd('\r');
                reader.AdvanceTo(buffer.GetPosition(1, position.Value));
                return text;
            }

            if (result.IsCompleted)
            {
                return null;
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Reads up to and including CRLF.CRLF; returns everything before the final ".\r\n", still stuffed.</summary>
    private static async Task<byte[]?> ReadDataAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        var data = new ArrayBufferWriter<byte>();
        var atLineStart = true;
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var sequenceReader = new SequenceReader<byte>(buffer);
            while (sequenceReader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n', advancePastDelimiter: true))
            {
                if (atLineStart && line.Length == 2 && line.FirstSpan[0] == (byte)'.' && line.Slice(1).FirstSpan[0] == (byte)'\r')
                {
                    reader.AdvanceTo(sequenceReader.Position);
                    return data.WrittenSpan.ToArray();
                }

                foreach (var segment in line)
                {
                    data.Write(segment.Span);
                }

                data.Write("\n"u8);
                atLineStart = true;
                consumed = sequenceReader.Position;
            }

            if (result.IsCompleted)
            {
                return null;
            }

            reader.AdvanceTo(consumed, buffer.End);
        }
    }

    private static async Task<byte[]?> ReadExactlyAsync(PipeReader reader, long size, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAtLeastAsync((int)size, cancellationToken);
            if (result.Buffer.Length >= size)
            {
                var bytes = result.Buffer.Slice(0, size).ToArray();
                reader.AdvanceTo(result.Buffer.GetPosition(size));
                return bytes;
            }

            if (result.IsCompleted)
            {
                return null;
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <summary>RFC 5321 §4.5.2: a receiver deletes the first character of a line that starts with a period.</summary>
    private static byte[] Unstuff(byte[] raw)
    {
        var output = new ArrayBufferWriter<byte>(raw.Length);
        var lineStart = true;
        foreach (var b in raw)
        {
            if (!(lineStart && b == (byte)'.'))
            {
                output.Write([b]);
            }

            lineStart = b == (byte)'\n';
        }

        return output.WrittenSpan.ToArray();
    }

    private sealed class TlsHolder : IAsyncDisposable
    {
        public SslStream? Stream { get; set; }

        public ValueTask DisposeAsync() => Stream?.DisposeAsync() ?? ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _acceptLoop;
        await Task.WhenAll(_sessions.Values).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        lock (_gate)
        {
            foreach (var (_, waiter) in _waiters)
            {
                waiter.TrySetCanceled();
            }
        }

        _stop.Dispose();
    }
}
