using System.Globalization;

namespace MailMesh.Chaos;

/// <summary>A fault the run injects while a phase's load runs.</summary>
public enum Fault
{
    /// <summary>SIGKILL to Ingress, a pause, then a fresh process.</summary>
    KillIngress,

    /// <summary>SIGKILL to Policy, a pause, then a fresh process.</summary>
    KillPolicy,

    /// <summary>SIGKILL to Queue, a pause, then a fresh process.</summary>
    KillQueue,

    /// <summary>SIGKILL to Dns, a pause, then a fresh process.</summary>
    KillDns,

    /// <summary>SIGKILL to Delivery, a pause, then a fresh process.</summary>
    KillDelivery,

    /// <summary><c>rabbitmqctl stop</c> of the private node, a pause, then a fresh start on the same data directory.</summary>
    RestartRabbitMq,

    /// <summary><c>pg_ctl stop -m fast</c> of the private cluster, a pause, then <c>pg_ctl start</c>.</summary>
    RestartPostgres,
}

/// <summary>
/// One phase of the run: a load of uniquely marked messages, the destination's behaviour while it runs, and the faults
/// injected meanwhile (one after another, <see cref="ChaosOptions.FaultGap"/> apart).
/// </summary>
public sealed record ChaosPhase
{
    /// <summary>Short name, part of every message id of the phase (letters and digits).</summary>
    public required string Name { get; init; }

    /// <summary>Messages per second over all connections; null: unpaced, every connection sends back to back.</summary>
    public double? Rate { get; init; }

    /// <summary>Concurrent SMTP client connections.</summary>
    public int Connections { get; init; } = 4;

    /// <summary>The most messages the phase sends.</summary>
    public int Messages { get; init; } = 100;

    /// <summary>How long the destination (the counting sink) waits before it answers the end of data.</summary>
    public TimeSpan SinkLatency { get; init; }

    /// <summary>From the phase's start, for this long the destination answers the end of data with 451 (deferred).</summary>
    public TimeSpan SinkDefersFor { get; init; }

    /// <summary>Injected in this order while the load runs; the load goes on until the last one has recovered.</summary>
    public IReadOnlyList<Fault> Faults { get; init; } = [];
}

/// <summary>Settings of a fault-injection run; <see cref="FullRun"/> and <see cref="ShortRun"/> are the two presets.</summary>
public sealed record ChaosOptions
{
    public static readonly IReadOnlyList<Fault> AllFaults =
        [Fault.KillIngress, Fault.KillPolicy, Fault.KillQueue, Fault.KillDns, Fault.KillDelivery, Fault.RestartRabbitMq, Fault.RestartPostgres];

    /// <summary>The phases, run in order; each ends with a settle period before the next starts.</summary>
    public IReadOnlyList<ChaosPhase> Phases { get; init; } = [];

    /// <summary><c>Queue:LeaseDuration</c> of the Queue service: short, so that the backlog outlives it.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>How long a killed service or a stopped server stays down before it is started again.</summary>
    public TimeSpan FaultPause { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Time between one fault's recovery and the next fault.</summary>
    public TimeSpan FaultGap { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>After a phase's load: at most this long for its accepted messages to arrive before the next phase.</summary>
    public TimeSpan SettleTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>After the last phase: at most this long for the system to become quiescent (nothing pending, nothing arriving).</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Nothing arrived at the sink for this long (and nothing is pending in the spool or the broker): quiescent.</summary>
    public TimeSpan QuietPeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The run fails when duplicated / accepted exceeds this (0.001: 0.1 %, issue 7 §7).</summary>
    public double MaxDuplicateRatio { get; init; } = 0.001;

    /// <summary>
    /// A duplicate is in the documented window when its first copy's end of data reached the destination at most the
    /// destination's reply latency plus this before a SIGKILL of Delivery: the time for the 250 to come back and be
    /// recorded in the spool. Any other duplicate fails the run.
    /// </summary>
    public TimeSpan KillWindowSlack { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Approximate size of each message in bytes.</summary>
    public int MessageSize { get; init; } = 2048;

    /// <summary><c>max_connections</c> of the private PostgreSQL cluster (PostgreSQL's own default: 100).</summary>
    public int PostgresMaxConnections { get; init; } = 100;

    /// <summary>Further settings for every service (environment-style keys, <c>Section__Key</c>).</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>();

    /// <summary>Keep the work directory (server data, service logs) instead of deleting it.</summary>
    public bool KeepWorkDirectory { get; init; }

    /// <summary>The whole run, start to report, is cancelled after this.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(40);

    /// <summary>The repository whose service builds are run; found from the running assembly when null.</summary>
    public string? RepositoryRoot { get; init; }

    /// <summary>The build configuration of the services (Release or Debug); that of the running assembly when null.</summary>
    public string? Configuration { get; init; }

    /// <summary>
    /// The full run: paced below delivery capacity with every fault, a backlog longer than the lease behind a
    /// destination that defers and then answers slowly, then unpaced above delivery capacity with every fault again.
    /// </summary>
    public static ChaosOptions FullRun() => new()
    {
        Lease = TimeSpan.FromSeconds(20),
        FaultPause = TimeSpan.FromSeconds(3),
        FaultGap = TimeSpan.FromSeconds(5),
        SettleTimeout = TimeSpan.FromMinutes(2),
        DrainTimeout = TimeSpan.FromMinutes(5),
        Phases =
        [
            // Capacity: 10 connections to the destination x (1 / 50 ms) = about 200 msg/s; paced at a tenth of it.
            new ChaosPhase { Name = "paced", Rate = 20, Connections = 8, Messages = 4000, SinkLatency = TimeSpan.FromMilliseconds(50), Faults = AllFaults },
            // 600 messages at 1 s each over 10 connections: a minute of backlog, three leases, after 10 s of 451s.
            new ChaosPhase { Name = "backlog", Connections = 8, Messages = 600, SinkLatency = TimeSpan.FromSeconds(1), SinkDefersFor = TimeSpan.FromSeconds(10) },
            // Capacity about 10 / 200 ms = 50 msg/s; eight unpaced clients accept several times that.
            new ChaosPhase { Name = "overload", Connections = 8, Messages = 12000, SinkLatency = TimeSpan.FromMilliseconds(200), Faults = AllFaults },
        ],
    };

    /// <summary>
    /// The short run of the test suite (a few hundred messages, each fault once, a 10 s lease): the services are killed
    /// under paced load, the broker and the database restarted under load above delivery capacity, then a backlog.
    /// </summary>
    public static ChaosOptions ShortRun() => new()
    {
        Lease = TimeSpan.FromSeconds(10),

        // About 600 accepted: 0.1 % is less than one message, and the one SIGKILL of Delivery (paced, 20 ms replies)
        // lands in the documented window in about one run in four, duplicating one message (0.17 %). The short run
        // therefore bounds the ratio at 1 % and relies on the strict check: nothing duplicated outside the window.
        // The full run (thousands of messages) keeps the 0.1 % goal.
        MaxDuplicateRatio = 0.01,
        FaultPause = TimeSpan.FromSeconds(1),
        FaultGap = TimeSpan.FromSeconds(0.5),
        SettleTimeout = TimeSpan.FromSeconds(20),
        DrainTimeout = TimeSpan.FromSeconds(45),
        QuietPeriod = TimeSpan.FromSeconds(3),
        // Below test.sh's --blame-hang-timeout (5 min), so that a slow run is cancelled and cleans up after itself
        // instead of having its test host killed with the servers still running.
        Timeout = TimeSpan.FromMinutes(4),
        Phases =
        [
            new ChaosPhase
            {
                Name = "paced", Rate = 8, Connections = 4, Messages = 400, SinkLatency = TimeSpan.FromMilliseconds(20),
                Faults = [Fault.KillIngress, Fault.KillPolicy, Fault.KillQueue, Fault.KillDns, Fault.KillDelivery],
            },
            // About 10 / 400 ms = 25 msg/s: a backlog of 15 s or more while the database, then the broker, restart.
            new ChaosPhase
            {
                Name = "overload", Connections = 8, Messages = 400, SinkLatency = TimeSpan.FromMilliseconds(400),
                Faults = [Fault.RestartPostgres, Fault.RestartRabbitMq],
            },
            // 150 messages at 1 s over 10 connections, after 3 s of 451s: 18 s of backlog, almost two leases.
            new ChaosPhase
            {
                Name = "backlog", Connections = 4, Messages = 150, SinkLatency = TimeSpan.FromSeconds(1), SinkDefersFor = TimeSpan.FromSeconds(3),
            },
        ],
    };

    /// <summary>
    /// The load tool's <c>--chaos</c> options (tools/MailMesh.LoadTool/README.md); anything else is an error. The
    /// preset comes first (<c>--short</c>, else the full run), then the options adjust it.
    /// </summary>
    public static ChaosOptions Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var options = args.Contains("--short") ? ShortRun() : FullRun();
        var settings = new Dictionary<string, string>();
        string[]? only = null;
        HashSet<Fault>? faults = null;
        int? connections = null;
        double? rate = null;
        var messages = new Dictionary<string, int>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{arg} needs a value");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            TimeSpan Seconds() => TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture));
            switch (arg)
            {
                case "--chaos" or "--short":
                    break;
                case "--target":
                    if (Next() != "distributed")
                    {
                        throw new ArgumentException("--chaos runs the distributed mode on private servers: --target distributed or nothing");
                    }

                    break;
                case "--lease": options = options with { Lease = Seconds() }; break;
                case "--fault-pause": options = options with { FaultPause = Seconds() }; break;
                case "--fault-gap": options = options with { FaultGap = Seconds() }; break;
                case "--settle-timeout": options = options with { SettleTimeout = Seconds() }; break;
                case "--drain-timeout": options = options with { DrainTimeout = Seconds() }; break;
                case "--timeout": options = options with { Timeout = Seconds() }; break;
                case "--max-duplicate-ratio": options = options with { MaxDuplicateRatio = double.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--size": options = options with { MessageSize = Int() }; break;
                case "--pg-max-connections": options = options with { PostgresMaxConnections = Int() }; break;
                case "--keep": options = options with { KeepWorkDirectory = true }; break;
                case "--phases": only = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries); break;
                case "--faults":
                    faults = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                        .Select(name => Enum.TryParse<Fault>(name, ignoreCase: true, out var fault) ? fault
                            : throw new ArgumentException($"--faults: unknown fault {name} (one of {string.Join(", ", Enum.GetNames<Fault>())})"))];
                    break;
                case "--connections": connections = Int(); break;
                case "--rate": rate = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--paced-messages": messages["paced"] = Int(); break;
                case "--backlog-messages": messages["backlog"] = Int(); break;
                case "--overload-messages": messages["overload"] = Int(); break;
                case "--set":
                    {
                        var pair = Next();
                        var equals = pair.IndexOf('=', StringComparison.Ordinal);
                        if (equals <= 0)
                        {
                            throw new ArgumentException($"--set needs Section__Key=value, got '{pair}'");
                        }

                        settings[pair[..equals]] = pair[(equals + 1)..];
                        break;
                    }

                default:
                    throw new ArgumentException($"unknown --chaos option {arg}; see tools/MailMesh.LoadTool/README.md");
            }
        }

        var phases = options.Phases
            .Where(p => only is null || only.Contains(p.Name, StringComparer.OrdinalIgnoreCase))
            .Select(p => p with
            {
                Messages = messages.GetValueOrDefault(p.Name, p.Messages),
                Connections = p.Rate is null ? connections ?? p.Connections : p.Connections,
                Rate = p.Rate is null ? null : rate ?? p.Rate,
                Faults = faults is null ? p.Faults : [.. p.Faults.Where(faults.Contains)],
            })
            .ToList();
        options = options with { Phases = phases, Settings = settings };
        options.Validate();
        return options;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad value.</summary>
    public void Validate()
    {
        if (Phases.Count == 0)
        {
            throw new ArgumentException("no phases to run (--phases names none of paced, backlog, overload)");
        }

        foreach (var phase in Phases)
        {
            if (phase.Connections < 1 || phase.Messages < 1 || phase.Rate <= 0 || phase.SinkLatency < TimeSpan.Zero || phase.SinkDefersFor < TimeSpan.Zero
                || !phase.Name.All(char.IsAsciiLetterOrDigit))
            {
                throw new ArgumentException($"phase {phase.Name}: connections and messages must be at least 1, the rate positive, latencies not negative, the name letters and digits");
            }
        }

        if (Lease <= TimeSpan.Zero || DrainTimeout <= TimeSpan.Zero || Timeout <= TimeSpan.Zero || FaultPause < TimeSpan.Zero || FaultGap < TimeSpan.Zero)
        {
            throw new ArgumentException("--lease, --drain-timeout and --timeout must be positive, --fault-pause and --fault-gap not negative");
        }

        if (MaxDuplicateRatio is < 0 or > 1 || MessageSize < 256 || PostgresMaxConnections < 10)
        {
            throw new ArgumentException("--max-duplicate-ratio must be in [0, 1], --size at least 256, --pg-max-connections at least 10");
        }
    }
}
