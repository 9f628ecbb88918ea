using System.Globalization;

namespace MailMesh.LoadTool;

internal sealed record LoadOptions
{
    public string Target { get; init; } = "standalone";
    public int Messages { get; init; } = 2000;
    public int Connections { get; init; } = 20;
    public int Size { get; init; } = 10 * 1024;
    public int SinkPort { get; init; }

    /// <summary>Delivery processes the distributed target starts (MAILMESH_DELIVERY_REPLICAS of run-distributed.sh).</summary>
    public int DeliveryReplicas { get; init; } = 1;

    /// <summary>Delivery:MaxConnectionsPerDestination of each replica; null: the service default.</summary>
    public int? DeliveryConnections { get; init; }

    /// <summary>Delivery:ConcurrentDeliveries of each replica (also its prefetch); null: the service default.</summary>
    public int? DeliveryConcurrency { get; init; }

    /// <summary>How long the counting sink waits before its reply to the end of data: a latency-bound destination.</summary>
    public TimeSpan SinkLatency { get; init; }
    /// <summary>Messages sent (and waited for at the sink) before the measured run, so that it measures steady state, not JIT.</summary>
    public int Warmup { get; init; }

    /// <summary>Built-in client only: messages per second over all connections (paced, open loop); null: as fast as it goes.</summary>
    public double? Rate { get; init; }

    /// <summary>
    /// --rate N%: the paced rate as a share of a peak measured in the same invocation, just before (0.8 for 80%): each round
    /// first runs the target at full speed (<see cref="PeakMessages"/> messages over <see cref="PeakConnections"/>
    /// connections, after the same warm-up), then paced at this share of that run's end-to-end rate. The machine's speed
    /// moves within the hour (docs/performance.md, session 27); a rate fixed from an earlier peak is then more or less
    /// than the share it names.
    /// </summary>
    public double? RateOfPeak { get; init; }

    /// <summary>The peak run's messages and connections for <see cref="RateOfPeak"/> (the documented peak: 3,000 over 20).</summary>
    public const int PeakMessages = 3000, PeakConnections = 20;

    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Drive the target with Debian's smtp-source instead of the built-in client.</summary>
    public bool SmtpSource { get; init; }

    /// <summary>Extra smtp-source arguments, e.g. "-d" (one connection for all of a session's messages).</summary>
    public string SmtpSourceArguments { get; init; } = "";

    /// <summary>Run the same load against a private Postfix relaying to the same kind of sink, and print the ratio.</summary>
    public bool ComparePostfix { get; init; }

    /// <summary>
    /// smtp-sink (Postfix's, with -c: a separate C process, the default) or builtin (the load tool's own: tells duplicates
    /// apart, can add latency, but shares this process and its thread pool with the client).
    /// </summary>
    public string Sink { get; init; } = "smtp-sink";

    /// <summary>The built-in client's recipients: spread (user0..user49, one per message) or single (user@, as smtp-source -t).</summary>
    public string Recipients { get; init; } = "spread";

    /// <summary>How many times to run the whole sequence (the target, then Postfix when compared).</summary>
    public int Repeat { get; init; } = 1;

    /// <summary>--memory-scenario idle|large|stall|all (MemoryScenario.cs), with its session count, message size and budget.</summary>
    public string? MemoryScenario { get; init; }
    public int? MemorySessions { get; init; }
    public int MemoryMessageSize { get; init; } = 35 * 1000 * 1000;
    public long? MemoryBudget { get; init; }
    public string RepositoryRoot { get; init; } = FindRepositoryRoot();

    /// <summary>--rspamd start|URL: scan every message with rspamd (a private one on loopback for "start"), to measure its cost.</summary>
    public string? Rspamd { get; init; }

    /// <summary>--clamd start|ADDRESS: scan every message with clamd (a private one with the EICAR signatures for "start").</summary>
    public string? Clamd { get; init; }

    /// <summary>
    /// --postgres-tls off|prefer: the distributed target's connections to PostgreSQL without TLS (off, the default: the
    /// server is on loopback, where TLS protects nothing, as in the compose file's PostgreSQL) or with Npgsql's default
    /// (prefer: TLS whenever the server offers it, as Debian's PostgreSQL does with its snake-oil certificate).
    /// </summary>
    public string PostgresTls { get; init; } = "off";

    /// <summary>"740" is messages per second; "80%" is that share of a peak measured first (<see cref="RateOfPeak"/>).</summary>
    private static LoadOptions ParseRate(LoadOptions options, string value)
    {
        if (!value.EndsWith('%'))
        {
            return options with { Rate = double.Parse(value, CultureInfo.InvariantCulture), RateOfPeak = null };
        }

        var percent = double.Parse(value.AsSpan(0, value.Length - 1), NumberStyles.Float, CultureInfo.InvariantCulture);
        return options with { Rate = null, RateOfPeak = percent / 100 };
    }

    /// <summary>The peak run that comes before a paced run at <see cref="RateOfPeak"/>: full speed, the documented peak's size.</summary>
    public LoadOptions PeakRun() => this with { Rate = null, RateOfPeak = null, Messages = PeakMessages, Connections = PeakConnections };

    /// <summary>The paced run at <see cref="RateOfPeak"/> of a peak run's end-to-end rate.</summary>
    public LoadOptions PacedRun(double peakEndToEnd)
    {
        if (RateOfPeak is not { } share)
        {
            throw new InvalidOperationException("no --rate N% was given");
        }

        if (!(peakEndToEnd > 0))
        {
            throw new ArgumentException("the peak run delivered nothing, so there is no rate to pace at", nameof(peakEndToEnd));
        }

        return this with { Rate = Math.Round(share * peakEndToEnd, 1), RateOfPeak = null };
    }

    public static LoadOptions Parse(string[] args)
    {
        var options = new LoadOptions();
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            options = args[i] switch
            {
                "--target" => options with { Target = Next() },
                "--messages" => options with { Messages = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--connections" => options with { Connections = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--size" => options with { Size = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--sink-port" => options with { SinkPort = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--delivery-replicas" => options with { DeliveryReplicas = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--delivery-connections" => options with { DeliveryConnections = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--delivery-concurrency" => options with { DeliveryConcurrency = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--sink-latency" => options with { SinkLatency = TimeSpan.FromMilliseconds(int.Parse(Next(), CultureInfo.InvariantCulture)) },
                "--memory-scenario" => options with { MemoryScenario = Next() },
                "--memory-sessions" => options with { MemorySessions = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--memory-size" => options with { MemoryMessageSize = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--memory-budget" => options with { MemoryBudget = long.Parse(Next(), CultureInfo.InvariantCulture) },
                "--smtp-source" => options with { SmtpSource = true },
                "--smtp-source-args" => options with { SmtpSourceArguments = Next() },
                "--compare-postfix" => options with { ComparePostfix = true },
                "--sink" => options with { Sink = Next() },
                "--recipients" => options with { Recipients = Next() },
                "--root" => options with { RepositoryRoot = Path.GetFullPath(Next()) },
                "--repeat" => options with { Repeat = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--warmup" => options with { Warmup = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--rspamd" => options with { Rspamd = Next() },
                "--clamd" => options with { Clamd = Next() },
                "--rate" => ParseRate(options, Next()),
                "--postgres-tls" => options with { PostgresTls = Next() },
                "--timeout" => options with { Timeout = TimeSpan.FromSeconds(int.Parse(Next(), CultureInfo.InvariantCulture)) },
                _ => throw new ArgumentException($"unknown option {args[i]}"),
            };
        }

        if (options.Warmup < 0 || (options.Warmup > 0 && options.Warmup < options.Connections))
        {
            throw new ArgumentException("--warmup is 0 or at least --connections");
        }

        if (options.Messages < options.Connections || options.Connections < 1)
        {
            throw new ArgumentException("--messages must be at least --connections, and --connections at least 1");
        }

        if (options.DeliveryReplicas < 1 || options.DeliveryConnections < 1 || options.DeliveryConcurrency < 1 || options.SinkLatency < TimeSpan.Zero)
        {
            throw new ArgumentException("--delivery-replicas, --delivery-connections and --delivery-concurrency must be at least 1, --sink-latency not negative");
        }

        if (options.Sink is not ("builtin" or "smtp-sink") || options.Recipients is not ("spread" or "single") || options.Repeat < 1)
        {
            throw new ArgumentException("--sink is builtin or smtp-sink, --recipients spread or single, --repeat at least 1");
        }

        if (options.Rate is { } rate && (rate <= 0 || options.SmtpSource))
        {
            throw new ArgumentException("--rate is a positive number of messages per second, for the built-in client (not with --smtp-source)");
        }

        if (options.RateOfPeak is { } share && (!(share is > 0 and <= 1) || options.SmtpSource || options.ComparePostfix))
        {
            throw new ArgumentException("--rate N% takes N above 0 and at most 100, for the built-in client (not with --smtp-source or --compare-postfix)");
        }

        if (options.PostgresTls is not ("off" or "prefer"))
        {
            throw new ArgumentException("--postgres-tls is off or prefer");
        }

        if (options.SinkLatency > TimeSpan.Zero)
        {
            // Only the built-in sink can answer late.
            options = options with { Sink = "builtin" };
        }

        if (options.DeliveryReplicas > 1 && options.Target != "distributed")
        {
            throw new ArgumentException("--delivery-replicas needs --target distributed");
        }

        // Postfix's tools come from Debian's postfix package; a missing one is a clear answer, not a stack trace.
        var needed = new List<(string Tool, string Why)>();
        if (options.Sink == "smtp-sink")
        {
            needed.Add(("/usr/sbin/smtp-sink", "--sink smtp-sink (the default)"));
        }

        if (options.SmtpSource)
        {
            needed.Add(("/usr/sbin/smtp-source", "--smtp-source"));
        }

        if (options.ComparePostfix || options.Target == "postfix")
        {
            needed.Add(("/usr/sbin/postfix", options.ComparePostfix ? "--compare-postfix" : "--target postfix"));
        }

        if (needed.FirstOrDefault(n => !File.Exists(n.Tool)) is { Tool: not null } missing)
        {
            throw new ArgumentException($"{missing.Why} needs {missing.Tool}, from Debian's postfix package: run 'MAILMESH_TEST_TOOLS=1 deploy/scripts/deps.sh' (the test command does), "
                + "or 'sudo apt-get install postfix'" + (options.Sink == "smtp-sink" && missing.Tool.EndsWith("smtp-sink", StringComparison.Ordinal) ? "; or pass --sink builtin" : ""));
        }

        return options;
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

        return Directory.GetCurrentDirectory();
    }
}
