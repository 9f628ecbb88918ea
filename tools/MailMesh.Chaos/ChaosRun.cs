using System.Diagnostics;
using System.Globalization;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Infrastructure;
using Npgsql;

namespace MailMesh.Chaos;

/// <summary>
/// The fault-injection run (issue 7 §7). It starts a private PostgreSQL cluster and a private RabbitMQ node, a DNS
/// server and the destination (a counting SMTP sink) on loopback, migrates the schema and starts the five services as
/// processes; then, phase by phase, it sends uniquely marked messages while it kills services with SIGKILL (starting
/// each again after a pause) and restarts the broker and the database; it waits for the system to become quiescent and
/// counts accepted, delivered, lost and duplicated messages. Everything it started is stopped at the end, whatever
/// happened (cancellation included), and the shared PostgreSQL and RabbitMQ of the machine are never touched.
/// </summary>
public static class ChaosRun
{
    private static readonly string[] StateNames = ["queued", "in flight", "deferred", "delivered", "bounced", "expired", "suppressed"];

    public static async Task<ChaosResult> RunAsync(ChaosOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(log);
        options.Validate();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Timeout);
        var token = timeout.Token;
        var clock = Stopwatch.StartNew();
        void Log(string line)
        {
            lock (log)
            {
                log.WriteLine($"[{clock.Elapsed.TotalSeconds,7:F1}s] {line}");
            }
        }

        async Task CleanUpAsync(string what, Func<Task>? dispose)
        {
            try
            {
                await (dispose?.Invoke() ?? Task.CompletedTask);
            }
            catch (Exception ex)
            {
                Log($"chaos: stopping {what} failed: {ex.Message}");
            }
        }

        await StaleRuns.ReapAsync(Log);
        var root = options.RepositoryRoot ?? FindRepositoryRoot();
        var configuration = options.Configuration ?? (AppContext.BaseDirectory.Contains("/Debug/", StringComparison.Ordinal) ? "Debug" : "Release");
        var work = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"{StaleRuns.Prefix}{Environment.ProcessId}-{Guid.NewGuid():N}"[..48]));
        // The servers' own users must reach their subdirectories.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(work.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }

        Log($"chaos: started {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm:ss}Z (service logs carry UTC times); work directory {work.FullName}, services from {root} ({configuration})");

        using var dns = TestDnsServer.Start();
        dns.AddMx(MarkedLoad.RecipientDomain, 10, "mx." + MarkedLoad.RecipientDomain).AddAddress("mx." + MarkedLoad.RecipientDomain, "127.0.0.1");
        dns.AddMx(MarkedLoad.SenderDomain, 10, "mx." + MarkedLoad.SenderDomain).AddAddress("mx." + MarkedLoad.SenderDomain, "127.0.0.1");
        await using var sink = new ChaosSink();
        sink.ExtraCopy = id => Log($"destination: {id} arrived again");

        PrivatePostgres? postgres = null;
        PrivateRabbitMq? rabbit = null;
        ServiceFleet? fleet = null;
        var succeeded = false;
        try
        {
            // Fail fast on a missing build, before any server starts.
            var smtpPort = LoopbackPort.Free();
            var pgTask = PrivatePostgres.CreateAsync(work.FullName, options.PostgresMaxConnections, token);
            var rabbitTask = PrivateRabbitMq.CreateAsync(work.FullName, token);
            try
            {
                await Task.WhenAll(pgTask, rabbitTask);
            }
            catch
            {
                // One may have started while the other failed.
                if (pgTask.IsCompletedSuccessfully)
                {
                    await pgTask.Result.DisposeAsync();
                }

                if (rabbitTask.IsCompletedSuccessfully)
                {
                    await rabbitTask.Result.DisposeAsync();
                }

                throw;
            }

            postgres = pgTask.Result;
            rabbit = rabbitTask.Result;
            Log($"chaos: PostgreSQL on 127.0.0.1:{postgres.Port} (max_connections {options.PostgresMaxConnections}), RabbitMQ node {rabbit.NodeName} on 127.0.0.1:{rabbit.AmqpPort}");

            var settings = new Dictionary<string, string>
            {
                ["ConnectionStrings__Spool"] = postgres.ConnectionString,
                ["ConnectionStrings__RabbitMq"] = rabbit.ConnectionString,
                ["Storage__Provider"] = "postgres",
                ["Ingress__Listen"] = $"127.0.0.1:{smtpPort}",
                ["Dns__Servers"] = dns.EndPoint.ToString(),
                ["Delivery__Port"] = sink.Port.ToString(CultureInfo.InvariantCulture),
                ["Delivery__HeloName"] = "mailmesh.chaos.test",
                ["Queue__LeaseDuration"] = options.Lease.ToString("c", CultureInfo.InvariantCulture),
                ["Queue__FirstRetryDelay"] = "00:00:02",
                ["Queue__MaxRetryDelay"] = "00:00:10",
                ["Queue__Jitter"] = "0",
                // The load is the point: no per-IP rate limits on loopback.
                // The clients are on loopback and relay: outside standalone no network may relay unless configured.
                ["Policy__RelayNetworks"] = "127.0.0.0/8,::1/128",
                ["Policy__ConnectionsPerMinutePerIp"] = "1000000",
                ["Policy__MessagesPerMinutePerIp"] = "1000000",
                ["Logging__LogLevel__Default"] = "Warning",
                ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information",
                ["Logging__Console__TimestampFormat"] = "HH:mm:ss.fff ",
                ["Logging__Console__UseUtcTimestamp"] = "true",
            };
            foreach (var (key, value) in options.Settings)
            {
                settings[key] = value;
            }

            fleet = new ServiceFleet(root, configuration, Path.Combine(work.FullName, "logs"), settings);
            foreach (var project in ServiceFleet.Services.Select(s => "MailMesh." + s).Append("MailMesh.Migrator"))
            {
                fleet.Binary(project);
            }

            await fleet.MigrateAsync(token);
            await fleet.StartAllAsync(token);
            Log($"chaos: five services ready; SMTP 127.0.0.1:{smtpPort}, destination 127.0.0.1:{sink.Port}, lease {options.Lease.TotalSeconds:F0} s");

            var runTag = Guid.NewGuid().ToString("N")[..8];
            var body = MarkedLoad.BuildBody(options.MessageSize);
            var loads = new List<MarkedLoad>();
            var faultErrors = new List<string>();
            var killWindows = new List<(long From, long To)>();
            foreach (var phase in options.Phases)
            {
                var load = new MarkedLoad(phase, runTag, smtpPort, body);
                loads.Add(load);
                await RunPhaseAsync(load, options, sink, fleet, postgres, rabbit, faultErrors, killWindows, Log, token);
            }

            // Drain: until nothing is pending in the spool or the broker and nothing has arrived for a while.
            var drainClock = Stopwatch.StartNew();
            var accepted = loads.SelectMany(l => l.Accepted).ToList();
            var drained = false;
            var lastReport = TimeSpan.Zero;
            Dictionary<string, long> states = [];
            Dictionary<string, long>? broker = null;
            var lastBrokerCheck = TimeSpan.FromSeconds(-10);
            while (drainClock.Elapsed < options.DrainTimeout)
            {
                states = await SpoolStatesAsync(postgres.ConnectionString, token) ?? [];
                var pending = states.Count == 0 ? -1 : states.GetValueOrDefault("queued") + states.GetValueOrDefault("in flight") + states.GetValueOrDefault("deferred");
                var missing = accepted.Count(id => sink.Arrivals(id) == 0);
                // rabbitmqctl starts an Erlang VM: ask at most every few seconds.
                if (pending == 0 && sink.SinceLastArrival >= options.QuietPeriod && drainClock.Elapsed - lastBrokerCheck >= TimeSpan.FromSeconds(5))
                {
                    lastBrokerCheck = drainClock.Elapsed;
                    broker = await rabbit.QueuedMessagesAsync(token);
                    if (broker is not null && WorkMessages(broker) == 0 && sink.SinceLastArrival >= options.QuietPeriod)
                    {
                        drained = true;
                        break;
                    }
                }

                if (drainClock.Elapsed - lastReport >= TimeSpan.FromSeconds(10))
                {
                    lastReport = drainClock.Elapsed;
                    Log($"drain: {accepted.Count - missing}/{accepted.Count} accepted delivered; spool {Describe(states)}");
                }

                await Task.Delay(1000, token);
            }

            broker = await rabbit.QueuedMessagesAsync(token) ?? broker;
            states = await SpoolStatesAsync(postgres.ConnectionString, token) ?? states;
            Log(drained ? $"drain: quiescent after {drainClock.Elapsed.TotalSeconds:F0} s" : $"drain: NOT quiescent after {drainClock.Elapsed.TotalSeconds:F0} s; spool {Describe(states)}, broker {(broker is null ? "?" : Describe(broker))}");

            var arrivals = sink.Snapshot();
            var firstEndOfData = sink.FirstEndOfData();
            bool InWindow(string id) => firstEndOfData.TryGetValue(id, out var at) && killWindows.Any(w => at >= w.From && at <= w.To);
            var phases = loads.Select(l => Count(l, arrivals, InWindow)).ToList();
            var result = new ChaosResult
            {
                Phases = phases,
                Total = new PhaseResult
                {
                    Name = "total",
                    Sent = phases.Sum(p => p.Sent),
                    Accepted = phases.Sum(p => p.Accepted),
                    Refused = phases.Sum(p => p.Refused),
                    Unconfirmed = phases.Sum(p => p.Unconfirmed),
                    UnconfirmedDelivered = phases.Sum(p => p.UnconfirmedDelivered),
                    Delivered = phases.Sum(p => p.Delivered),
                    Lost = phases.Sum(p => p.Lost),
                    Duplicated = phases.Sum(p => p.Duplicated),
                    WindowDuplicated = phases.Sum(p => p.WindowDuplicated),
                    ExtraCopies = phases.Sum(p => p.ExtraCopies),
                },
                MaxDuplicateRatio = options.MaxDuplicateRatio,
                SpoolStates = states,
                BrokerQueues = broker,
                Drained = drained,
                DrainTime = drainClock.Elapsed,
                Elapsed = clock.Elapsed,
                Unmarked = sink.Unmarked,
                Deferrals = sink.Deferred,
                FaultErrors = faultErrors,
            };
            succeeded = result.Passed;
            if (!succeeded)
            {
                WriteLogTails(fleet, log);
            }

            return result;
        }
        finally
        {
            Log("chaos: stopping the services, RabbitMQ and PostgreSQL");
            // Each clean-up on its own: one that throws must not leave the servers after it running.
            await CleanUpAsync("the services", fleet is null ? null : () => fleet.DisposeAsync().AsTask());
            await CleanUpAsync("RabbitMQ", rabbit is null ? null : rabbit.DisposeAsync);
            await CleanUpAsync("PostgreSQL", postgres is null ? null : postgres.DisposeAsync);

            if (options.KeepWorkDirectory)
            {
                Log($"chaos: kept {work.FullName} (service logs in logs/, server data and logs in postgres/ and rabbitmq/)");
            }
            else
            {
                try
                {
                    work.Delete(recursive: true);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Log($"chaos: could not delete {work.FullName}: {ex.Message}");
                }
            }

            Log(succeeded ? "chaos: done" : "chaos: done (the run failed; see above)");
        }
    }

    private static async Task RunPhaseAsync(MarkedLoad load, ChaosOptions options, ChaosSink sink, ServiceFleet fleet, PrivatePostgres postgres,
        PrivateRabbitMq rabbit, List<string> faultErrors, List<(long From, long To)> killWindows, Action<string> log, CancellationToken token)
    {
        var phase = load.Phase;
        sink.Latency = phase.SinkLatency;
        sink.DeferNext(phase.SinkDefersFor);
        log($"phase {phase.Name}: {phase.Messages} messages over {phase.Connections} connections, "
            + (phase.Rate is { } rate ? $"paced at {rate} msg/s" : "unpaced")
            + $"; destination answers after {phase.SinkLatency.TotalMilliseconds:F0} ms"
            + (phase.SinkDefersFor > TimeSpan.Zero ? $", 451 for {phase.SinkDefersFor.TotalSeconds:F0} s from the first delivery on" : "")
            + (phase.Faults.Count > 0 ? "; faults: " + string.Join(", ", phase.Faults) : ""));

        var clock = Stopwatch.StartNew();
        using var stopSending = CancellationTokenSource.CreateLinkedTokenSource(token);
        var loadTask = load.RunAsync(stopSending.Token, token);
        if (phase.Faults.Count > 0)
        {
            foreach (var fault in phase.Faults)
            {
                await Task.Delay(options.FaultGap, token);
                try
                {
                    if (fault == Fault.KillDelivery)
                    {
                        // Copies whose end of data reached the destination from its reply latency plus the slack before the
                        // kill until the process is gone (it stays down FaultPause) may have their 250 die with it.
                        var now = Stopwatch.GetTimestamp();
                        var reach = sink.Latency + options.KillWindowSlack;
                        killWindows.Add((now - (long)(reach.TotalSeconds * Stopwatch.Frequency), now + (long)(options.FaultPause.TotalSeconds * Stopwatch.Frequency)));
                    }

                    await InjectAsync(fault, options, fleet, postgres, rabbit, log, token);
                    log($"fault: so far {load.Accepted.Count} accepted in this phase; destination: {sink.TotalArrivals} arrivals, {sink.ExtraCopies} of them extra copies");
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !token.IsCancellationRequested)
                {
                    var error = $"{fault} failed: {ex.Message}";
                    faultErrors.Add(error);
                    log("fault: " + error);
                }
            }

            // A little load after the last recovery too, then stop sending (the transaction in progress finishes).
            await Task.WhenAny(loadTask, Task.Delay(options.FaultGap, token));
            await stopSending.CancelAsync();
        }

        await loadTask;
        log($"phase {phase.Name}: load done in {clock.Elapsed.TotalSeconds:F1} s: sent {load.Sent}, accepted {load.Accepted.Count}, refused {load.Refused}, "
            + $"unconfirmed {load.Unconfirmed.Count}, failed connects {load.ConnectFailures}");

        // Settle: give this phase's accepted messages time to arrive before the next phase changes the destination.
        var settle = Stopwatch.StartNew();
        var accepted = load.Accepted.ToList();
        while (settle.Elapsed < options.SettleTimeout && accepted.Any(id => sink.Arrivals(id) == 0))
        {
            await Task.Delay(500, token);
        }

        var missing = accepted.Count(id => sink.Arrivals(id) == 0);
        log($"phase {phase.Name}: " + (missing == 0
            ? $"all {accepted.Count} accepted arrived {settle.Elapsed.TotalSeconds:F1} s after the load"
            : $"{missing} of {accepted.Count} accepted still missing after {settle.Elapsed.TotalSeconds:F0} s; moving on"));
    }

    private static async Task InjectAsync(Fault fault, ChaosOptions options, ServiceFleet fleet, PrivatePostgres postgres, PrivateRabbitMq rabbit,
        Action<string> log, CancellationToken token)
    {
        var clock = Stopwatch.StartNew();
        switch (fault)
        {
            case Fault.RestartRabbitMq:
                log("fault: RabbitMQ stop (rabbitmqctl stop)");
                await rabbit.StopAsync(token);
                await Task.Delay(options.FaultPause, token);
                await rabbit.StartAsync(token);
                log($"fault: RabbitMQ started again; down {clock.Elapsed.TotalSeconds:F1} s");
                break;
            case Fault.RestartPostgres:
                log("fault: PostgreSQL stop (pg_ctl stop -m fast)");
                await postgres.StopAsync(token);
                await Task.Delay(options.FaultPause, token);
                await postgres.StartAsync(token);
                log($"fault: PostgreSQL started again; down {clock.Elapsed.TotalSeconds:F1} s");
                break;
            default:
                var service = fault.ToString()["Kill".Length..];
                var pid = await fleet.KillAsync(service);
                log($"fault: kill -9 {service} (pid {pid})");
                await Task.Delay(options.FaultPause, token);
                await fleet.StartAsync(service, token);
                log($"fault: {service} started again (pid {fleet.ProcessId(service)}) and ready; down {clock.Elapsed.TotalSeconds:F1} s");
                break;
        }
    }

    private static PhaseResult Count(MarkedLoad load, IReadOnlyDictionary<string, int> arrivals, Func<string, bool> inKillWindow)
    {
        var prefix = load.IdOf(0)[..^1];
        var phaseArrivals = arrivals.Where(a => a.Key.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        var accepted = load.Accepted.ToList();
        var unconfirmed = load.Unconfirmed.ToList();
        return new PhaseResult
        {
            Name = load.Phase.Name,
            Sent = load.Sent,
            Accepted = accepted.Count,
            Refused = load.Refused,
            Unconfirmed = unconfirmed.Count,
            UnconfirmedDelivered = unconfirmed.Count(arrivals.ContainsKey),
            Delivered = phaseArrivals.Count,
            Lost = accepted.Count(id => !arrivals.ContainsKey(id)),
            Duplicated = phaseArrivals.Count(a => a.Value > 1),
            WindowDuplicated = phaseArrivals.Count(a => a.Value > 1 && inKillWindow(a.Key)),
            ExtraCopies = phaseArrivals.Sum(a => a.Value - 1),
        };
    }

    private static async Task<Dictionary<string, long>?> SpoolStatesAsync(string connectionString, CancellationToken token)
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = 5, CommandTimeout = 10 };
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(token);
            await using var command = new NpgsqlCommand("""
                SELECT state, count(*) FROM spool.recipients GROUP BY state
                """, connection);
            await using var reader = await command.ExecuteReaderAsync(token);
            var states = StateNames.ToDictionary(name => name, _ => 0L);
            while (await reader.ReadAsync(token))
            {
                var state = reader.GetInt16(0);
                states[state < StateNames.Length ? StateNames[state] : $"state {state}"] = reader.GetInt64(1);
            }

            return states;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Messages in the queues services consume from; MassTransit's _error and _skipped queues are where work goes to be forgotten.</summary>
    internal static long WorkMessages(IReadOnlyDictionary<string, long> queues) =>
        queues.Where(q => !IsDeadLetter(q.Key)).Sum(q => q.Value);

    internal static bool IsDeadLetter(string queue) =>
        queue.EndsWith("_error", StringComparison.Ordinal) || queue.EndsWith("_skipped", StringComparison.Ordinal);

    private static string Describe(Dictionary<string, long> states) =>
        states.Count == 0 ? "(did not answer)" : string.Join(", ", states.Where(s => s.Value > 0).Select(s => $"{s.Key} {s.Value}"));

    /// <summary>The last errors each service logged: where to start reading when the run fails.</summary>
    private static void WriteLogTails(ServiceFleet fleet, TextWriter log)
    {
        foreach (var service in ServiceFleet.Services)
        {
            var file = fleet.LogFile(service);
            if (!File.Exists(file))
            {
                continue;
            }

            var lines = File.ReadAllLines(file);
            var errors = lines.Select((line, index) => (line, index))
                // Console lines are "<UTC time> fail: Category[id]" with the message on the next line.
                .Where(l => l.line.Contains(" fail: ", StringComparison.Ordinal) || l.line.Contains(" crit: ", StringComparison.Ordinal)
                    || l.line.StartsWith("fail:", StringComparison.Ordinal) || l.line.StartsWith("crit:", StringComparison.Ordinal))
                .Select(l => l.line + (l.index + 1 < lines.Length ? " " + lines[l.index + 1].Trim() : ""))
                .ToList();
            lock (log)
            {
                log.WriteLine($"--- {service}: {errors.Count} errors logged; the last ones:");
                foreach (var error in errors.TakeLast(4))
                {
                    log.WriteLine("    " + (error.Length > 400 ? error[..400] + "..." : error));
                }
            }
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "MailMesh.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"no MailMesh.sln above {AppContext.BaseDirectory}");
    }
}
