using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.LoadTool;

/// <summary>
/// A lean SMTP sink that accepts everything and counts messages by the token in their Subject, so end-to-end
/// throughput is measured where delivery ends, with as little sink overhead as possible. With a latency, the reply
/// to the end of data comes that much later, as from a remote destination that is far away or slow to commit: the
/// load is then bound by how many SMTP transactions the sender keeps open at once, not by CPU.
/// </summary>
internal sealed class CountingSink : ILoadSink
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly ConcurrentDictionary<string, long> _arrivals = new();
    private readonly TimeSpan _latency;
    private long _messages;
    private int _sessions;
    private int _maxSessions;

    public CountingSink(IPAddress address, int port, TimeSpan latency = default)
    {
        _latency = latency;
        _listener = new TcpListener(address, port);
        _listener.Start(512);
        _acceptLoop = AcceptAsync();
    }

    public string Name => "built-in sink";

    public int? ProcessId => null;

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public long Messages => Interlocked.Read(ref _messages);

    public long UniqueMessages => _arrivals.Count;

    /// <summary>The most SMTP sessions that were open at once.</summary>
    public int MaxConcurrentSessions => Volatile.Read(ref _maxSessions);

    /// <summary>Stopwatch timestamp of the last arrival.</summary>
    public long LastArrival { get; private set; }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            _ = Task.Run(() => SessionAsync(socket));
        }
    }

    private async Task SessionAsync(Socket socket)
    {
        using var _ = socket;
        var open = Interlocked.Increment(ref _sessions);
        for (var max = Volatile.Read(ref _maxSessions); open > max; max = Volatile.Read(ref _maxSessions))
        {
            if (Interlocked.CompareExchange(ref _maxSessions, open, max) == max)
            {
                break;
            }
        }

        // Replies to pipelined commands (RFC 2920: MAIL, RCPT, DATA arrive together) are separate small writes. With Nagle's
        // algorithm on, the second waited for the ACK of the first, which the sender delays (Linux: up to 40 ms): every
        // delivery transaction stalled ~40 ms, capping each delivery connection at ~20 msg/s. That, not MailMesh, was the
        // 176 msg/s "end to end" of the standalone figure (10 delivery connections; README.md, "Why the figures disagreed").
        socket.NoDelay = true;
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var reader = new LineReader(stream);
        try
        {
            await WriteAsync(stream, "220 sink ESMTP\r\n");
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
            {
                var verb = line.Length >= 4 ? line[..4].ToUpperInvariant() : line.ToUpperInvariant();
                switch (verb)
                {
                    case "EHLO":
                        await WriteAsync(stream, "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n250 ENHANCEDSTATUSCODES\r\n");
                        break;
                    case "DATA":
                        await WriteAsync(stream, "354 go ahead\r\n");
                        var token = await reader.SkipDataAsync(_stop.Token);

                        if (_latency > TimeSpan.Zero)
                        {
                            await Task.Delay(_latency, _stop.Token);
                        }

                        Interlocked.Increment(ref _messages);
                        LastArrival = Stopwatch.GetTimestamp();
                        _arrivals.TryAdd(token ?? Guid.NewGuid().ToString(), LastArrival);
                        await WriteAsync(stream, "250 2.0.0 Ok\r\n");
                        break;
                    case "QUIT":
                        await WriteAsync(stream, "221 2.0.0 Bye\r\n");
                        return;
                    default:
                        await WriteAsync(stream, "250 2.0.0 Ok\r\n");
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
        {
        }
        finally
        {
            Interlocked.Decrement(ref _sessions);
        }
    }

    private static ValueTask WriteAsync(NetworkStream stream, string text) => stream.WriteAsync(Encoding.ASCII.GetBytes(text));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _acceptLoop;
        _stop.Dispose();
    }
}

/// <summary>Reads CRLF-terminated lines from a stream with one pooled buffer.</summary>
internal sealed class LineReader(Stream stream)
{
    private readonly byte[] _buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
    private int _start;
    private int _end;

    /// <summary>
    /// Skips the content of DATA up to and including CRLF "." CRLF (RFC 5321 §4.1.1.4; the first CRLF is the DATA
    /// line's) by scanning the buffer, without a string per line, and returns the load token of the first
    /// "Subject: load " line, if any. (A sink that made a string of every content line cost twice smtp-sink's CPU.)
    /// </summary>
    public async Task<string?> SkipDataAsync(CancellationToken cancellationToken)
    {
        string? token = null;
        var atStart = true;
        while (!ScanData(ref atStart, ref token))
        {
            // Keep a tail that may hold a split terminator or a Subject line not yet complete; drop the rest.
            _start = _end - Math.Min(_end - _start, token is null ? 128 : 4);
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            if (read == 0)
            {
                throw new IOException("connection closed in DATA");
            }

            _end += read;
        }

        return token;
    }

    /// <summary>Looks for the token and the end of data in the buffered bytes; true (past the end) when found.</summary>
    private bool ScanData(ref bool atStart, ref string? token)
    {
        ReadOnlySpan<byte> subject = "Subject: load "u8;
        var window = _buffer.AsSpan(_start, _end - _start);
        if (atStart)
        {
            if (window.Length < 3)
            {
                return false;
            }

            if (window.StartsWith(".\r\n"u8))
            {
                _start += 3;
                return true;
            }

            atStart = false;
        }

        if (token is null && window.IndexOf(subject) is var s and >= 0)
        {
            var value = window[(s + subject.Length)..];
            if (value.IndexOf("\r\n"u8) is var e and >= 0)
            {
                token = Encoding.ASCII.GetString(value[..e]);
            }
        }

        if (window.IndexOf("\r\n.\r\n"u8) is var end and >= 0)
        {
            _start += end + 5;
            return true;
        }

        return false;
    }

    public async Task<string?> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var index = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (index >= 0)
            {
                var length = index - _start;
                if (length > 0 && _buffer[index - 1] == '\r')
                {
                    length--;
                }

                var line = Encoding.Latin1.GetString(_buffer, _start, length);
                _start = index + 1;
                return line;
            }

            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                throw new IOException("line longer than 64 KiB");
            }

            var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            if (read == 0)
            {
                return null;
            }

            _end += read;
        }
    }
}
