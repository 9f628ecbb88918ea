using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.Chaos;

/// <summary>
/// The destination: an SMTP server on 127.0.0.1 that accepts everything and counts each message by its
/// <c>X-Chaos-Id</c> header (in the top-level header block only: a bounce quotes the original's headers in its body),
/// so a message that arrives twice is told from two messages. It can answer the end of data late (a slow destination)
/// and, for a while, with <c>451 4.3.0</c> (a deferring one).
/// </summary>
internal sealed class ChaosSink : IAsyncDisposable
{
    public const string IdHeader = "X-Chaos-Id";

    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly ConcurrentDictionary<string, int> _arrivals = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _firstEndOfData = new(StringComparer.Ordinal);
    private long _unmarked;
    private long _deferred;
    private long _lastArrival = Stopwatch.GetTimestamp();
    private long _arrivalCount;
    private long _extraCopies;
    private long _deferFor;
    private long _deferUntil;

    public ChaosSink()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start(512);
        _acceptLoop = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>
    /// Called with the id of each message that arrives again (from the connection's thread), so the run's progress
    /// shows when each extra copy came, next to the faults.
    /// </summary>
    public Action<string>? ExtraCopy { get; set; }

    /// <summary>How long the reply to the end of data waits.</summary>
    public TimeSpan Latency { get; set; }

    /// <summary>
    /// For this long from the next end of data on, every end of data is answered 451 and the message is not counted
    /// (so the deferrals hit work that has reached the destination, whenever that is).
    /// </summary>
    public void DeferNext(TimeSpan duration)
    {
        Interlocked.Exchange(ref _deferFor, (long)(duration.TotalSeconds * Stopwatch.Frequency));
        Interlocked.Exchange(ref _deferUntil, 0);
    }

    /// <summary>Arrivals without a chaos id (delivery status notifications).</summary>
    public long Unmarked => Interlocked.Read(ref _unmarked);

    /// <summary>End-of-data replies that were 451.</summary>
    public long Deferred => Interlocked.Read(ref _deferred);

    /// <summary>Arrivals of every kind so far: it changes while anything is still arriving.</summary>
    public long TotalArrivals => Interlocked.Read(ref _arrivalCount) + Unmarked;

    /// <summary>Arrivals of an id that had arrived before.</summary>
    public long ExtraCopies => Interlocked.Read(ref _extraCopies);

    /// <summary>Time since the last arrival of any kind.</summary>
    public TimeSpan SinceLastArrival => Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastArrival));

    /// <summary>How many times <paramref name="id"/> arrived (0: never).</summary>
    public int Arrivals(string id) => _arrivals.TryGetValue(id, out var count) ? count : 0;

    /// <summary>
    /// When the end of data of each id's first copy was read (<see cref="Stopwatch.GetTimestamp"/>): from then on the
    /// destination holds the message, whatever becomes of the sender.
    /// </summary>
    public IReadOnlyDictionary<string, long> FirstEndOfData() => new Dictionary<string, long>(_firstEndOfData, StringComparer.Ordinal);

    /// <summary>A snapshot of every marked id with its arrival count.</summary>
    public IReadOnlyDictionary<string, int> Snapshot() => new Dictionary<string, int>(_arrivals, StringComparer.Ordinal);

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
            catch (SocketException)
            {
                continue;
            }

            _ = Task.Run(() => SessionAsync(socket));
        }
    }

    private async Task SessionAsync(Socket socket)
    {
        using var _ = socket;
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using var reader = new LineReader(stream);
        try
        {
            await WriteAsync(stream, "220 chaos-sink ESMTP\r\n");
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
            {
                var verb = line.Length >= 4 ? line[..4].ToUpperInvariant() : line.ToUpperInvariant();
                switch (verb)
                {
                    case "EHLO":
                        await WriteAsync(stream, "250-chaos-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n250 ENHANCEDSTATUSCODES\r\n");
                        break;
                    case "DATA":
                        await WriteAsync(stream, "354 go ahead\r\n");
                        string? id = null;
                        var inHeaders = true;
                        while (await reader.ReadLineAsync(_stop.Token) is { } data && data != ".")
                        {
                            if (!inHeaders)
                            {
                                continue;
                            }

                            if (data.Length == 0)
                            {
                                inHeaders = false;
                            }
                            else if (id is null && data.StartsWith(IdHeader + ":", StringComparison.OrdinalIgnoreCase))
                            {
                                id = data[(IdHeader.Length + 1)..].Trim();
                            }
                        }

                        var endOfData = Stopwatch.GetTimestamp();
                        if (Latency > TimeSpan.Zero)
                        {
                            await Task.Delay(Latency, _stop.Token);
                        }

                        if (Deferring())
                        {
                            Interlocked.Increment(ref _deferred);
                            await WriteAsync(stream, "451 4.3.0 chaos: deferring for a while\r\n");
                            break;
                        }

                        // Counted before the 250 is written: a sender that sees the 250 may rely on the count.
                        if (id is null)
                        {
                            Interlocked.Increment(ref _unmarked);
                        }
                        else
                        {
                            _firstEndOfData.TryAdd(id, endOfData);
                            if (_arrivals.AddOrUpdate(id, 1, (_, n) => n + 1) > 1)
                            {
                                Interlocked.Increment(ref _extraCopies);
                                ExtraCopy?.Invoke(id);
                            }

                            Interlocked.Increment(ref _arrivalCount);
                        }

                        Interlocked.Exchange(ref _lastArrival, Stopwatch.GetTimestamp());
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
    }

    private bool Deferring()
    {
        var window = Interlocked.Read(ref _deferFor);
        if (window == 0)
        {
            return false;
        }

        var now = Stopwatch.GetTimestamp();
        var until = Interlocked.CompareExchange(ref _deferUntil, now + window, 0);
        return now < (until == 0 ? now + window : until);
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
internal sealed class LineReader(Stream stream) : IDisposable
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

    public void Dispose() => ArrayPool<byte>.Shared.Return(_buffer);
}
