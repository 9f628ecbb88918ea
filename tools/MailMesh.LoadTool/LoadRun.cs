using System.Diagnostics;
using System.Globalization;
using System.Net;

namespace MailMesh.LoadTool;

/// <summary>What one run measured.</summary>
internal sealed record RunResult
{
    public required string Kind { get; init; }
    public required string Description { get; init; }
    public required string Client { get; init; }
    public required string Sink { get; init; }
    public required int Messages { get; init; }
    public required int Size { get; init; }
    public required int Connections { get; init; }
    public required int Accepted { get; init; }
    public required int Refused { get; init; }
    public required double AcceptSeconds { get; init; }

    /// <summary>Per-message accept latency (MAIL to the 250 after the data), ms, sorted; empty with smtp-source.</summary>
    public required double[] LatenciesMs { get; init; }

    /// <summary>The built-in client's latencies less its own timer's lateness in a paced run (sorted; see <see cref="ConnectionResult"/>).</summary>
    public double[] WithoutOwnLatenessMs { get; init; } = [];

    /// <summary>Paced run: the built-in client's latencies from each MAIL written (sorted; see <see cref="ConnectionResult"/>).</summary>
    public double[] FromSendMs { get; init; } = [];

    /// <summary>Paced run: slots that found every connection of the client busy.</summary>
    public int QueuedSlots { get; init; }

    /// <summary>Paced run: how the slowest 1 % of the messages fell in time (a few stalls, or spread).</summary>
    public TailWindows? Tail { get; init; }

    /// <summary>Paced runs: where the slowest 1 % spent their time.</summary>
    public TailPhases? Phases { get; init; }

    /// <summary>Ingress's own accept-duration histogram over the measured phase (null when it has no /metrics, e.g. Postfix).</summary>
    public AcceptHistogram.Buckets? ServerAccept { get; init; }
    public required long Delivered { get; init; }
    public required long DeliveredWithDuplicates { get; init; }

    /// <summary>Delivered when the client had its last 250: accepted minus this is the backlog delivery still had to drain.</summary>
    public required long DeliveredWhenClientDone { get; init; }

    /// <summary>From the first connection to the last arrival at the sink.</summary>
    public required double EndToEndSeconds { get; init; }

    /// <summary>CPU seconds per component during the run (from before the first connection until the pipeline settled).</summary>
    public required IReadOnlyList<(string Name, double Seconds)> Cpu { get; init; }

    /// <summary>Messages MassTransit receive endpoints took off the bus (all services), or null.</summary>
    public long? MassTransitReceived { get; init; }

    /// <summary>RabbitMQ node-wide: published by clients and delivered to consumers, or null.</summary>
    public RabbitMqCounters.Totals? RabbitMq { get; init; }

    /// <summary>What PostgreSQL did in the target's own database during the run, or null.</summary>
    public PostgresCounters.Totals? Postgres { get; init; }

    /// <summary>Virtual hosts other than ours with connections after the run (node-wide counters include them).</summary>
    public IReadOnlyDictionary<string, int> OtherVirtualHosts { get; init; } = new Dictionary<string, int>();

    public required string LoadBefore { get; init; }
    public required string LoadAfter { get; init; }
    public string? Error { get; init; }

    public double AcceptedRate => Accepted / AcceptSeconds;
    public double EndToEndRate => Delivered / EndToEndSeconds;
}

/// <summary>One run: start the sink and the target, account CPU and bus counters around the load, stop both.</summary>
internal static class LoadRun
{
    public static async Task<RunResult> RunAsync(LoadOptions options, IPEndPoint dns, SharedServers shared)
    {
        await using var sink = await ILoadSink.StartAsync(options);
        Console.WriteLine($"load: {options.Target}: sink {sink.Name} on 127.0.0.1:{sink.Port}");
        await using var scanners = await Scanners.StartAsync(options);
        await using var target = await Target.StartAsync(options, dns, sink.Port, scanners.Settings);
        var perConnection = options.Messages / options.Connections;
        var total = perConnection * options.Connections;

        var ledger = new CpuLedger();
        foreach (var (name, pid) in target.Processes)
        {
            ledger.AddTree(name, pid);
        }

        if (shared.RabbitMqPid is { } rabbit)
        {
            ledger.AddTree(target.UsesRabbitMq ? "rabbitmq (beam.smp)" : "rabbitmq (idle here: others' use)", rabbit);
        }

        if (shared.PostgresPid is { } postgres)
        {
            if (target.Kind == "distributed")
            {
                ledger.AddPostgres("postgresql: backends of our services", "postgresql: rest of cluster (others' tests too)", postgres, [.. target.Processes.Select(p => p.Pid)]);
            }
            else
            {
                ledger.AddTree("postgresql (idle here: others' use)", postgres);
            }
        }

        var client = options.SmtpSource ? "smtp-source" : "load tool";
        if (options.SmtpSource)
        {
            ledger.AddReapedChildren("client: smtp-source");
        }

        ledger.AddSelf(options.SmtpSource
            ? (sink.ProcessId is null ? "load tool: sink + DNS" : "load tool: DNS")
            : (sink.ProcessId is null ? "load tool: client + sink + DNS" : "load tool: client + DNS"));
        if (sink.ProcessId is { } sinkPid)
        {
            ledger.AddTree("sink: smtp-sink", sinkPid);
        }

        // Warm-up: the same load, unmeasured, until the sink has all of it. A .NET service compiles its hot code again
        // (tiered JIT) during its first minutes under load; this measures what it does after that, as a server that runs
        // for days does. The ledger starts after it, and the sink's counts are taken relative to it.
        var baseline = 0L;
        if (options.Warmup > 0)
        {
            using var warmupTimeout = new CancellationTokenSource(options.Timeout);
            var warmupTotal = options.Warmup / options.Connections * options.Connections;
            await SendAsync(options, target, warmupTotal, connectionOffset: options.Connections, warmupTimeout.Token);
            while (sink.UniqueMessages < warmupTotal && !warmupTimeout.IsCancellationRequested)
            {
                await Task.Delay(20, CancellationToken.None);
            }

            await Task.Delay(1000, CancellationToken.None); // the results and events of the last ones
            baseline = sink.UniqueMessages;
            Console.WriteLine($"load: {options.Target}: warm-up of {warmupTotal} messages done ({baseline} at the sink)");
        }

        RabbitMqCounters.Totals? rabbitBefore = target.UsesRabbitMq ? await RabbitMqCounters.ReadAsync() : null;
        var metricsBefore = await MetricsScrape.ReadAsync(target.MetricsEndpoints);
        var transitBefore = MassTransitCounters.From(metricsBefore);
        var acceptBefore = AcceptHistogram.From(metricsBefore);
        var postgresBefore = await PostgresCounters.ReadAsync(target.PostgresDatabase);
        var loadBefore = LoadAverage();

        using var timeout = new CancellationTokenSource(options.Timeout);
        ledger.Start();
        var started = Stopwatch.GetTimestamp();
        var sent = await SendAsync(options, target, total, connectionOffset: 0, timeout.Token);
        var (accepted, refused, latencies, error) = (sent.Accepted, sent.Refused, sent.LatenciesMs, sent.Error);

        // A paced run's rates run from its first slot, not from before its connections and the pause after them.
        started = sent.FirstSlot ?? started;
        var acceptSeconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var deliveredAtAcceptEnd = sink.UniqueMessages - baseline;

        // End to end: until the sink holds every accepted message (or the timeout).
        while (sink.UniqueMessages - baseline < accepted && !timeout.IsCancellationRequested)
        {
            await Task.Delay(20, CancellationToken.None);
        }

        // Let the pipeline finish what follows the last delivery (results, events) before the CPU and bus counters are read:
        // until MassTransit's receive counter stops moving for a second (at most 15 s), or one second without it.
        var settled = transitBefore;
        for (var i = 0; i < 15; i++)
        {
            await Task.Delay(1000, CancellationToken.None);
            var now = await MassTransitCounters.ReadAsync(target.MetricsEndpoints);
            if (now == settled)
            {
                break;
            }

            settled = now;
        }

        var cpu = ledger.Stop();
        var loadAfter = LoadAverage();
        var metricsAfter = await MetricsScrape.ReadAsync(target.MetricsEndpoints);
        var transitAfter = MassTransitCounters.From(metricsAfter);
        var acceptAfter = AcceptHistogram.From(metricsAfter);
        RabbitMqCounters.Totals? rabbitAfter = target.UsesRabbitMq ? await RabbitMqCounters.ReadAsync() : null;
        if (target.PostgresDatabase is not null)
        {
            await Task.Delay(1100, CancellationToken.None); // PostgreSQL flushes backends' statistics at most once a second
        }

        var postgresAfter = await PostgresCounters.ReadAsync(target.PostgresDatabase);
        var otherVhosts = target.UsesRabbitMq ? await RabbitMqCounters.OtherVirtualHostsAsync(target.VirtualHost) : new Dictionary<string, int>();

        return new RunResult
        {
            Kind = target.Kind,
            Description = target.Description,
            Client = client,
            Sink = sink.Name,
            Messages = total,
            Size = options.Size,
            Connections = options.Connections,
            Accepted = accepted,
            Refused = refused,
            AcceptSeconds = acceptSeconds,
            LatenciesMs = latencies,
            WithoutOwnLatenessMs = sent.WithoutOwnLatenessMs,
            FromSendMs = sent.FromSendMs,
            QueuedSlots = sent.QueuedSlots,
            Tail = sent.Tail,
            Phases = sent.Phases,
            ServerAccept = acceptBefore is { } hb && acceptAfter is { } ha ? ha - hb : null,
            Delivered = sink.UniqueMessages - baseline,
            DeliveredWhenClientDone = deliveredAtAcceptEnd,
            DeliveredWithDuplicates = sink.Messages - baseline,
            EndToEndSeconds = sink.LastArrival == 0 ? double.NaN : Stopwatch.GetElapsedTime(started, sink.LastArrival).TotalSeconds,
            Cpu = cpu,
            MassTransitReceived = transitBefore is { } tb && transitAfter is { } ta ? ta - tb : null,
            RabbitMq = rabbitBefore is { } rb && rabbitAfter is { } ra ? new RabbitMqCounters.Totals(ra.Published - rb.Published, ra.Delivered - rb.Delivered) : null,
            OtherVirtualHosts = otherVhosts,
            Postgres = postgresBefore is { } pb && postgresAfter is { } pa ? pa - pb : null,
            LoadBefore = loadBefore,
            LoadAfter = loadAfter,
            Error = error,
        };
    }

    /// <summary>
    /// <paramref name="total"/> messages over options.Connections connections, by smtp-source or the built-in client
    /// (whose message tokens carry the connection index: <paramref name="connectionOffset"/> keeps the warm-up's apart).
    /// </summary>
    private static async Task<SendResult> SendAsync(LoadOptions options, Target target, int total, int connectionOffset, CancellationToken cancellationToken)
    {
        if (options.SmtpSource)
        {
            var (succeeded, errors) = await SmtpSourceClient.RunAsync(SmtpSourceClient.Arguments(options, target.Host, target.Port, total), cancellationToken);
            return new SendResult(succeeded ? total : 0, succeeded ? 0 : total, [], [], [], 0, null, null, succeeded ? null : "smtp-source failed: " + errors, null);
        }

        var perConnection = total / options.Connections;
        var clock = (Stopwatch.GetTimestamp(), DateTime.UtcNow);
        var body = SmtpLoadClient.BuildBody(options.Size);
        var pacer = options.Rate is { } rate ? new Pacer(rate, options.Connections) : null;
        var results = await Task.WhenAll(Enumerable.Range(0, options.Connections).Select(index =>
            Task.Run(() => new SmtpLoadClient(target.Host, target.Port).RunAsync(connectionOffset + index, perConnection, body, "load.test", options.Recipients == "single", pacer, cancellationToken))));
        double[] latencies = [.. results.SelectMany(r => r.LatenciesMs).Order()];
        // The paced-run figures only for a paced run: the report prints their lines when they are there.
        var paced = options.Rate is not null;
        double[] ownLateness = paced ? [.. results.SelectMany(r => r.WithoutOwnLatenessMs).Order()] : [];
        double[] fromSend = paced ? [.. results.SelectMany(r => r.FromSendMs).Order()] : [];
        var tail = paced ? TailWindows.Of([.. results.SelectMany(r => r.DueTimes.Zip(r.LatenciesMs))], Stopwatch.Frequency, clock) : null;
        long? firstSlot = pacer is { Start: > 0 } ? pacer.Start : null;
        var phases = paced
            ? TailPhases.Of([.. results.SelectMany(r => r.LatenciesMs.Zip(r.FromSendMs, r.CommandsMs).Select(m => new MessagePhases(m.First, m.Second, m.Third)))])
            : null;
        return new SendResult(latencies.Length, results.Sum(r => r.Rejected), latencies, ownLateness, fromSend, results.Sum(r => r.QueuedSlots), tail, phases, null, firstSlot);
    }

    /// <param name="FirstSlot">A paced run's first slot (a <see cref="Stopwatch"/> timestamp), after its connections and <see cref="Pacer.Settle"/>.</param>
    private sealed record SendResult(int Accepted, int Refused, double[] LatenciesMs, double[] WithoutOwnLatenessMs, double[] FromSendMs, int QueuedSlots, TailWindows? Tail, TailPhases? Phases, string? Error, long? FirstSlot);

    /// <summary>The 1-minute load average (what <c>uptime</c> prints first).</summary>
    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }
}

/// <summary>The machine's shared RabbitMQ node and PostgreSQL cluster, found once: their CPU is accounted in every run.</summary>
internal sealed record SharedServers(int? RabbitMqPid, int? PostgresPid)
{
    public static async Task<SharedServers> FindAsync()
    {
        var rabbit = await RabbitMqCounters.NodePidAsync();
        return new SharedServers(rabbit, await PostmasterPidAsync());
    }

    /// <summary>pg_lsclusters' cluster on MAILMESH_PG_PORT (5432): the first line of its data directory's postmaster.pid.</summary>
    private static async Task<int?> PostmasterPidAsync()
    {
        var port = Environment.GetEnvironmentVariable("MAILMESH_PG_PORT") is { Length: > 0 } p ? p : "5432";
        var (code, output) = await Command.RunAsync("pg_lsclusters", ["-h"]);
        if (code != 0)
        {
            return null;
        }

        // Ver Cluster Port Status Owner Data-directory Log-file
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 6 && fields[2] == port && File.Exists(Path.Combine(fields[5], "postmaster.pid")))
            {
                var first = File.ReadLines(Path.Combine(fields[5], "postmaster.pid")).FirstOrDefault();
                return int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
            }
        }

        return null;
    }
}
