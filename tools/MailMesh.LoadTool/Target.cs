using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MailMesh.Testing.Infrastructure;
using MailMesh.Testing.Postfix;
using MailMesh.Testing.Postgres;
using MailMesh.Testing.RabbitMq;
using Npgsql;

namespace MailMesh.LoadTool;

/// <summary>
/// The SMTP server under load: a Standalone process, the distributed mode, a private Postfix instance relaying to the
/// sink, or an external server. It names the processes whose CPU the run accounts for and the /metrics endpoints
/// whose MassTransit counters count bus messages.
/// </summary>
internal sealed class Target : IAsyncDisposable
{
    /// <summary>Ingress's defaults (IngressOptions.MaxConnectionsPerIp, MaxConnections).</summary>
    private const int IngressConnectionsPerIp = 50, IngressConnections = 2000;

    private readonly Func<Task>? _stop;

    private Target(string host, int port, string description, Func<Task>? stop)
    {
        Host = host;
        Port = port;
        Description = description;
        _stop = stop;
    }

    public string Host { get; }
    public int Port { get; }
    public string Description { get; }

    /// <summary>Short name for tables: standalone, distributed, postfix or host:port.</summary>
    public string Kind { get; private init; } = "external";

    /// <summary>Process trees that make up the target, by name (a service, Postfix's master).</summary>
    public IReadOnlyList<(string Name, int Pid)> Processes { get; private init; } = [];

    /// <summary>Prometheus endpoints of the MailMesh services (MassTransit's receive counter).</summary>
    public IReadOnlyList<Uri> MetricsEndpoints { get; private init; } = [];

    /// <summary>Whether the target's bus is the shared RabbitMQ (its counters then mean something).</summary>
    public bool UsesRabbitMq { get; private init; }

    /// <summary>The target's own PostgreSQL database (distributed), whose statistics the run reads.</summary>
    public string? PostgresDatabase { get; private init; }

    /// <summary>The RabbitMQ virtual host the target's services use.</summary>
    public string VirtualHost { get; private init; } = "/";

    /// <summary>
    /// The settings every MailMesh process of a target this tool starts gets: the sink as the relay, the test DNS
    /// server, no per-client rate limits on loopback, and room for every client connection of the run.
    /// </summary>
    internal static Dictionary<string, string> Settings(LoadOptions options, IPEndPoint dns, int sinkPort, IReadOnlyDictionary<string, string>? extra = null)
    {
        var settings = new Dictionary<string, string>
        {
            ["Dns__Servers"] = dns.ToString(),
            ["Delivery__Port"] = sinkPort.ToString(CultureInfo.InvariantCulture),
            // The load is the point: no per-IP rate limit on loopback.
            // The clients are on loopback and relay: outside standalone no network may relay unless configured.
            ["Policy__RelayNetworks"] = "127.0.0.0/8,::1/128",
            ["Policy__ConnectionsPerMinutePerIp"] = "1000000",
            ["Policy__MessagesPerMinutePerIp"] = "1000000",
            ["Logging__LogLevel__Default"] = "Warning",
        };

        // Every client connection is from 127.0.0.1: Ingress's per-address limit (50 by default) would answer the ones
        // above it with 421 at the greeting.
        if (options.Connections > IngressConnectionsPerIp)
        {
            var limit = options.Connections.ToString(CultureInfo.InvariantCulture);
            settings["Ingress__MaxConnectionsPerIp"] = limit;
            settings["Ingress__MaxConnections"] = Math.Max(options.Connections, IngressConnections).ToString(CultureInfo.InvariantCulture);
        }

        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        if (options.DeliveryConnections is { } connections)
        {
            settings["Delivery__MaxConnectionsPerDestination"] = connections.ToString(CultureInfo.InvariantCulture);
        }

        if (options.DeliveryConcurrency is { } concurrency)
        {
            settings["Delivery__ConcurrentDeliveries"] = concurrency.ToString(CultureInfo.InvariantCulture);
        }

        return settings;
    }

    /// <param name="extra">Further settings for every service (the memory scenarios raise connection limits).</param>
    public static async Task<Target> StartAsync(LoadOptions options, IPEndPoint dns, int sinkPort, IReadOnlyDictionary<string, string>? extra = null)
    {
        var settings = Settings(options, dns, sinkPort, extra);

        switch (options.Target)
        {
            case "standalone":
                {
                    var smtpPort = LoopbackPort.Free();
                    var data = Directory.CreateTempSubdirectory("mailmesh-load-");
                    settings["Ingress__Listen"] = $"127.0.0.1:{smtpPort}";
                    settings["Urls"] = $"http://127.0.0.1:{LoopbackPort.Free()}";
                    settings["Storage__SqlitePath"] = Path.Combine(data.FullName, "mailmesh.db");
                    var dll = Path.Combine(options.RepositoryRoot, "services/MailMesh.Standalone/bin/Release/net10.0/MailMesh.Standalone.dll");
                    var process = StartProcess("dotnet", dll, settings);
                    await WaitForPortAsync(smtpPort, process);
                    return new Target("127.0.0.1", smtpPort, "MailMesh standalone (in-memory bus, SQLite spool)", async () =>
                    {
                        process.Kill(entireProcessTree: true);
                        await process.WaitForExitAsync();
                        data.Delete(recursive: true);
                    })
                    {
                        Kind = "standalone",
                        Processes = [("standalone", process.Id)],
                        MetricsEndpoints = [new Uri(settings["Urls"] + "/metrics")],
                    };
                }

            case "distributed":
                {
                    var smtpPort = LoopbackPort.Free();
                    settings["MAILMESH_SMTP"] = $"127.0.0.1:{smtpPort}";
                    settings["MAILMESH_NO_BUILD"] = "1";
                    // A database and a virtual host of its own: mail left queued by an earlier run (or a test) on the
                    // shared ones would be delivered to this run's sink and counted, and its rows would slow the claims.
                    var database = await SharedServerAsync("PostgreSQL", () => TestDatabase.CreateAsync("mailmesh_load"));
                    TestVirtualHost virtualHost;
                    try
                    {
                        virtualHost = await SharedServerAsync("RabbitMQ", TestVirtualHost.CreateAsync);
                    }
                    catch
                    {
                        await database.DisposeAsync();
                        throw;
                    }

                    settings["ConnectionStrings__Spool"] = new NpgsqlConnectionStringBuilder(database.ConnectionString)
                    {
                        SslMode = options.PostgresTls == "off" ? SslMode.Disable : SslMode.Prefer,
                    }.ConnectionString;
                    settings["ConnectionStrings__RabbitMq"] = virtualHost.Uri.ToString();
                    settings["MAILMESH_DELIVERY_REPLICAS"] = options.DeliveryReplicas.ToString(CultureInfo.InvariantCulture);
                    var script = Path.Combine(options.RepositoryRoot, "deploy/scripts/run-distributed.sh");
                    var start = StartProcess(script, "start", settings, inheritOutput: true);
                    await start.WaitForExitAsync();
                    if (start.ExitCode != 0)
                    {
                        throw new InvalidOperationException("run-distributed.sh start failed");
                    }

                    // run-distributed.sh: pid files in MAILMESH_RUN_DIR (./data/distributed), HTTP on MAILMESH_HTTP_BASE (8081) +
                    // ingress 0, policy 1, queue 2, dns 3, delivery 4, delivery-N 3+N.
                    var runDirectory = Environment.GetEnvironmentVariable("MAILMESH_RUN_DIR") is { Length: > 0 } run ? run : Path.Combine(options.RepositoryRoot, "data/distributed");
                    var httpBase = int.TryParse(Environment.GetEnvironmentVariable("MAILMESH_HTTP_BASE"), CultureInfo.InvariantCulture, out var b) ? b : 8081;
                    var instances = new List<(string Name, int Offset)> { ("ingress", 0), ("policy", 1), ("queue", 2), ("dns", 3), ("delivery", 4) };
                    instances.AddRange(Enumerable.Range(2, options.DeliveryReplicas - 1).Select(n => ($"delivery-{n}", 3 + n)));
                    var processes = instances
                        .Select(i => (i.Name, Pid: int.Parse(File.ReadAllText(Path.Combine(runDirectory, i.Name + ".pid")).Trim(), CultureInfo.InvariantCulture)))
                        .ToList();
                    return new Target("127.0.0.1", smtpPort, $"MailMesh distributed (RabbitMQ, PostgreSQL {(options.PostgresTls == "off" ? "without" : "with")} TLS, {4 + options.DeliveryReplicas} processes: {options.DeliveryReplicas} Delivery)", async () =>
                    {
                        using var stop = StartProcess(script, "stop", settings, inheritOutput: true);
                        await stop.WaitForExitAsync();
                        await virtualHost.DisposeAsync();
                        await database.DisposeAsync();
                    })
                    {
                        Kind = "distributed",
                        Processes = processes,
                        MetricsEndpoints = [.. instances.Select(i => new Uri($"http://127.0.0.1:{httpBase + i.Offset}/metrics"))],
                        UsesRabbitMq = true,
                        VirtualHost = virtualHost.Name,
                        PostgresDatabase = database.ConnectionString,
                    };
                }

            case "postfix":
                {
                    // A private Postfix instance (postmulti, as the Postfix interop tests make them; the machine's own
                    // Postfix is left alone) with Postfix's defaults for queueing and delivery (fsync on, 20 connections
                    // per destination), relaying everything to the sink. Postfix cannot be pointed at the load tool's DNS
                    // server on a high port, so the next hop is the relayhost [127.0.0.1]:sink instead of an MX lookup.
                    var postfixOptions = new PostfixInstanceOptions { HostName = "bench.localdomain" };
                    postfixOptions.Settings["relayhost"] = $"[127.0.0.1]:{sinkPort.ToString(CultureInfo.InvariantCulture)}";
                    postfixOptions.Settings["smtpd_relay_restrictions"] = "permit_mynetworks, reject";
                    postfixOptions.Settings["message_size_limit"] = "104857600";
                    postfixOptions.Settings["smtputf8_enable"] = "no";
                    var postfix = await PostfixInstance.StartAsync(postfixOptions);
                    // master holds an exclusive lock on its pid file, which .NET's File.ReadAllText (advisory shared lock) respects.
                    var masterPid = int.Parse((await Command.RunAsync("cat", [Path.Combine(postfix.QueueDirectory, "pid/master.pid")])).Output.Trim(), CultureInfo.InvariantCulture);
                    var version = (await Command.RunAsync("/usr/sbin/postconf", ["-h", "mail_version"])).Output.Trim();
                    return new Target(postfix.EndPoint.Address.ToString(), postfix.Port, $"Postfix {version} (private instance {postfix.Name}, defaults, relayhost = the sink)", async () => await postfix.DisposeAsync())
                    {
                        Kind = "postfix",
                        Processes = [("postfix (master tree)", masterPid)],
                    };
                }

            default:
                {
                    var endpoint = IPEndPoint.Parse(options.Target);
                    return new Target(endpoint.Address.ToString(), endpoint.Port, $"external SMTP server {endpoint}", null);
                }
        }
    }

    /// <summary>
    /// A database or virtual host of its own on the shared server, or a clear answer when that server is not running
    /// (a new user's first distributed run, before the test command or deps.sh has started it): not a stack trace.
    /// </summary>
    private static async Task<T> SharedServerAsync<T>(string server, Func<Task<T>> create)
    {
        try
        {
            return await create();
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            throw new LoadClientException(
                $"needs {server} on loopback, which did not answer ({ex.Message}); `bash deploy/scripts/deps.sh` installs and starts PostgreSQL and RabbitMQ");
        }
    }

    internal static Process StartProcess(string file, string arguments, Dictionary<string, string> environment, bool inheritOutput = false)
    {
        var info = new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = !inheritOutput,
            RedirectStandardError = !inheritOutput,
        };
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        if (!inheritOutput)
        {
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null)
                {
                    Console.Error.WriteLine("target: " + e.Data);
                }
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        return process;
    }

    internal static async Task WaitForPortAsync(int port, Process process)
    {
        for (var i = 0; i < 600; i++)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the target exited with code {process.ExitCode}");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        throw new TimeoutException($"nothing listens on 127.0.0.1:{port} after 60 s");
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop is not null)
        {
            await _stop();
        }
    }
}
