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
                        string? token = null;
                        while (await reader.ReadLineAsync(_stop.Token) is { } data && data != ".")
                        {
                            if (token is null && data.StartsWith("Subject: load ", StringComparison.Ordinal))
                            {
                                token = data["Subject: load ".Length..];
                            }
                        }

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
