using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.LoadTool;

/// <summary>
/// One SMTP connection sending messages back to back, pipelining MAIL/RCPT/DATA (RFC 2920), or at the times a shared
/// <see cref="Pacer"/> gives out.
/// </summary>
internal sealed class SmtpLoadClient(string host, int port)
{
    public async Task<ConnectionResult> RunAsync(int connectionIndex, int messages, byte[] bodyTemplate, string recipientDomain, bool singleRecipient, CancellationToken cancellationToken) =>
        await RunAsync(connectionIndex, messages, bodyTemplate, recipientDomain, singleRecipient, pacer: null, cancellationToken);

    /// <summary>
    /// With a <paramref name="pacer"/>, each message waits for its slot and its latency runs from the slot's time, not
    /// from when this connection got round to it: a slow server is charged for the wait it caused (no coordinated omission).
    /// </summary>
    public async Task<ConnectionResult> RunAsync(int connectionIndex, int messages, byte[] bodyTemplate, string recipientDomain, bool singleRecipient, Pacer? pacer, CancellationToken cancellationToken)
    {
        var latencies = new List<double>(messages);
        var dueTimes = new List<long>(messages);
        var ownLate = new List<double>(messages);
        var fromSend = new List<double>(messages);
        var commands = new List<double>(messages);
        var queued = 0;
        var rejected = 0;
        using var client = new TcpClient { NoDelay = true };
        NetworkStream stream;
        LineReader reader;
        try
        {
            await client.ConnectAsync(host, port, cancellationToken);
            stream = client.GetStream();
            reader = new LineReader(stream);
            var greeting = await ReadReplyAsync(reader, cancellationToken);
            if (!greeting.StartsWith("220", StringComparison.Ordinal))
            {
                throw new LoadClientException(GreetingRefused(connectionIndex, greeting));
            }

            await stream.WriteAsync(Encoding.ASCII.GetBytes("EHLO load.test\r\n"), cancellationToken);
            await ExpectAsync(reader, "250", cancellationToken);
        }
        catch (Exception ex) when (pacer is not null)
        {
            pacer.Fail(ex);
            throw;
        }

        if (pacer is not null)
        {
            // The schedule starts once every connection has greeted: a slot never waits for another connection's set-up.
            await pacer.ConnectedAsync(cancellationToken);
        }

        for (var i = 0; i < messages; i++)
        {
            var token = $"{connectionIndex}-{i}";
            // One recipient per message: the same one every time (as smtp-source -t), or one of 50.
            var recipient = singleRecipient ? "user" : $"user{i % 50}";
            var envelope = $"MAIL FROM:<load@sender.test>\r\nRCPT TO:<{recipient}@{recipientDomain}>\r\nDATA\r\n";
            var (started, late) = pacer is null ? (Stopwatch.GetTimestamp(), 0L) : await pacer.NextAsync(cancellationToken);
            var sent = Stopwatch.GetTimestamp();
            if (pacer is not null && late == 0 && Stopwatch.GetElapsedTime(started, sent) > Pacer.QueuedAfter)
            {
                queued++; // every connection was busy when this slot came: it waited in the client's own queue
            }

            await stream.WriteAsync(Encoding.ASCII.GetBytes(envelope), cancellationToken);
            var mail = await ReadReplyAsync(reader, cancellationToken);
            var rcpt = await ReadReplyAsync(reader, cancellationToken);
            var data = await ReadReplyAsync(reader, cancellationToken);
            var commandsAnswered = Stopwatch.GetTimestamp();
            if (!data.StartsWith("354", StringComparison.Ordinal))
            {
                // RFC 2920: with no valid recipient the server refuses DATA; reset and count it.
                rejected++;
                await stream.WriteAsync("RSET\r\n"u8.ToArray(), cancellationToken);
                await ReadReplyAsync(reader, cancellationToken);
                _ = mail + rcpt;
                continue;
            }

            await stream.WriteAsync(Encoding.ASCII.GetBytes($"Subject: load {token}\r\n"), cancellationToken);
            await stream.WriteAsync(bodyTemplate, cancellationToken);
            var final = await ReadReplyAsync(reader, cancellationToken);
            if (final.StartsWith("250", StringComparison.Ordinal))
            {
                latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                dueTimes.Add(started);
                ownLate.Add(Stopwatch.GetElapsedTime(started + late).TotalMilliseconds);
                fromSend.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                commands.Add(Stopwatch.GetElapsedTime(sent, commandsAnswered).TotalMilliseconds);
            }
            else
            {
                rejected++;
            }
        }

        await stream.WriteAsync("QUIT\r\n"u8.ToArray(), cancellationToken);
        return new ConnectionResult(latencies, ownLate, fromSend, queued, rejected) { DueTimes = dueTimes, CommandsMs = commands };
    }

    /// <summary>What to tell the user when a connection is refused at the greeting: most often a connection limit.</summary>
    internal static string GreetingRefused(int connectionIndex, string greeting) =>
        $"the target refused connection {connectionIndex} at the greeting: \"{greeting}\". "
        + (greeting.StartsWith("421", StringComparison.Ordinal)
            ? "A 421 there is most often a limit on concurrent connections from one address (MailMesh: Ingress:MaxConnectionsPerIp, 50 by default; "
              + "the standalone and distributed targets raise it to --connections): use fewer --connections or raise the target's limit"
            : "It does not accept mail from this client now");

    private static async Task ExpectAsync(LineReader reader, string code, CancellationToken cancellationToken)
    {
        var reply = await ReadReplyAsync(reader, cancellationToken);
        if (!reply.StartsWith(code, StringComparison.Ordinal))
        {
            throw new LoadClientException($"expected {code}, got: {reply}");
        }
    }

    /// <summary>Reads one (possibly multi-line) reply and returns its last line.</summary>
    private static async Task<string> ReadReplyAsync(LineReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            var line = await reader.ReadLineAsync(cancellationToken) ?? throw new IOException("connection closed");
            if (line.Length < 4 || line[3] != '-')
            {
                return line;
            }
        }
    }

    /// <summary>A message body of about <paramref name="size"/> bytes: headers after Subject, text lines, and the end of data.</summary>
    public static byte[] BuildBody(int size)
    {
        var builder = new StringBuilder();
        builder.Append("From: load@sender.test\r\nTo: user@load.test\r\nMessage-ID: <load@sender.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
        var line = new string('x', 76);
        while (builder.Length < size)
        {
            builder.Append(line).Append("\r\n");
        }

        builder.Append(".\r\n");
        return Encoding.ASCII.GetBytes(builder.ToString());
    }
}

/// <param name="LatenciesMs">From each message's slot (or its start, unpaced) to the 250.</param>
/// <param name="WithoutOwnLatenessMs">The same less the client's own lateness: how much later than its slot the client's
/// timer woke a connection that was idle, waiting for it. A slot that was already due when its connection came free is
/// not taken off: that wait is the server's.</param>
/// <param name="FromSendMs">From the MAIL command written to the 250: what the server took, without any wait for a free
/// connection of this client (so a server that stalls every connection is undercharged here: read it with
/// <paramref name="QueuedSlots"/>).</param>
/// <param name="QueuedSlots">Slots that were more than <see cref="Pacer.QueuedAfter"/> due when a connection came free
/// for them: the paced load was queueing in the client's own connections.</param>
internal sealed record ConnectionResult(List<double> LatenciesMs, List<double> WithoutOwnLatenessMs, List<double> FromSendMs, int QueuedSlots, int Rejected)
{
    /// <summary>When each message of <see cref="LatenciesMs"/> was due (<see cref="Stopwatch"/> timestamps, same order).</summary>
    public List<long> DueTimes { get; init; } = [];

    /// <summary>From MAIL, RCPT and DATA written to the 354 (same order): the part of <see cref="FromSendMs"/> before the content.</summary>
    public List<double> CommandsMs { get; init; } = [];
}

/// <summary>
/// Hands out send times <c>1 / rate</c> seconds apart to every connection of a run, from <paramref name="settle"/> after
/// all of them are ready (<see cref="Settle"/> when not given).
/// </summary>
/// <param name="connections">The connections that share the schedule: it starts when all of them are open and have
/// had their EHLO answered, so that the accept latency measured is the steady state's, not that of opening them all at once.</param>
/// <param name="settle">How long after the last connection is ready the first slot is due.</param>
internal sealed class Pacer(double messagesPerSecond, int connections, TimeSpan? settle = null)
{
    /// <summary>A slot this far past due when its connection came free waited for a connection, not for the timer.</summary>
    public static readonly TimeSpan QueuedAfter = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// The pause between the last connection ready and the first slot. Starting at once, the first half second of the
    /// schedule still ran beside the client's own start (forty connections opened, the counters read before the run):
    /// sampled every 50 ms, the load tool used 0.6 of a core there against 0.25 later, on the same two cores as the
    /// servers, and the 100 ms window holding most of the slowest 1 % was 0.1-0.5 s into the run in most paced runs
    /// of sessions 24-26. With a 2 s pause it was there in 1 run of 4, and with this 1 s pause in 1 of 4 (0.8 s in;
    /// issue 8, session 26).
    /// </summary>
    public static readonly TimeSpan Settle = TimeSpan.FromSeconds(1);

    private readonly long _interval = (long)(Stopwatch.Frequency / messagesPerSecond);
    private readonly long _settle = (long)((settle ?? Settle).TotalSeconds * Stopwatch.Frequency);
    private readonly TaskCompletionSource _allConnected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _waiting = connections;
    private long _start;
    private long _next = -1;

    /// <summary>When the first slot is due (a <see cref="Stopwatch"/> timestamp): 0 until every connection is ready.</summary>
    public long Start => Volatile.Read(ref _start);

    /// <summary>One connection is ready; completes when all are, with the schedule's start set.</summary>
    public Task ConnectedAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Decrement(ref _waiting) == 0)
        {
            Volatile.Write(ref _start, Stopwatch.GetTimestamp() + _settle);
            _allConnected.TrySetResult();
        }

        return _allConnected.Task.WaitAsync(cancellationToken);
    }

    /// <summary>A connection could not be opened: the others stop waiting for it.</summary>
    public void Fail(Exception exception) => _allConnected.TrySetException(exception);

    /// <summary>
    /// Waits until the next slot and returns its time (a <see cref="Stopwatch"/> timestamp) and, when it had to wait,
    /// how many ticks later than the slot the timer woke it (0 for a slot already due: then the wait was the server's).
    /// </summary>
    public async Task<(long Due, long Late)> NextAsync(CancellationToken cancellationToken)
    {
        var slot = Interlocked.Increment(ref _next);
        var due = Volatile.Read(ref _start) + (slot * _interval);
        var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
        if (wait <= TimeSpan.Zero)
        {
            return (due, 0);
        }

        // A timer can fire up to a millisecond early (it counts whole milliseconds on a coarser clock): wait out the rest.
        do
        {
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Ceiling(wait.TotalMilliseconds)), cancellationToken);
            wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
        }
        while (wait > TimeSpan.Zero);

        return (due, Math.Max(Stopwatch.GetTimestamp() - due, 0));
    }
}

/// <summary>The target answered a load client in a way the run cannot go on from (refused at the greeting, EHLO refused).</summary>
internal sealed class LoadClientException(string message) : IOException(message);
