using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.LoadTool;

/// <summary>The SMTP server under load: a Standalone process, the distributed mode, or an external server.</summary>
internal sealed class Target : IAsyncDisposable
{
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

    public static async Task<Target> StartAsync(LoadOptions options, IPEndPoint dns, int sinkPort)
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
        if (options.DeliveryConnections is { } connections)
        {
            settings["Delivery__MaxConnectionsPerDestination"] = connections.ToString(CultureInfo.InvariantCulture);
        }

        if (options.DeliveryConcurrency is { } concurrency)
        {
            settings["Delivery__ConcurrentDeliveries"] = concurrency.ToString(CultureInfo.InvariantCulture);
        }

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
                    });
                }

            case "distributed":
                {
                    var smtpPort = LoopbackPort.Free();
                    settings["MAILMESH_SMTP"] = $"127.0.0.1:{smtpPort}";
                    settings["MAILMESH_NO_BUILD"] = "1";
                    settings["MAILMESH_DELIVERY_REPLICAS"] = options.DeliveryReplicas.ToString(CultureInfo.InvariantCulture);
                    var script = Path.Combine(options.RepositoryRoot, "deploy/scripts/run-distributed.sh");
                    var start = StartProcess(script, "start", settings, inheritOutput: true);
                    await start.WaitForExitAsync();
                    if (start.ExitCode != 0)
                    {
                        throw new InvalidOperationException("run-distributed.sh start failed");
                    }

                    return new Target("127.0.0.1", smtpPort, $"MailMesh distributed (RabbitMQ, PostgreSQL, {4 + options.DeliveryReplicas} processes: {options.DeliveryReplicas} Delivery)", async () =>
                    {
                        using var stop = StartProcess(script, "stop", settings, inheritOutput: true);
                        await stop.WaitForExitAsync();
                    });
                }

            default:
                {
                    var endpoint = IPEndPoint.Parse(options.Target);
                    return new Target(endpoint.Address.ToString(), endpoint.Port, $"external SMTP server {endpoint}", null);
                }
        }
    }

    private static Process StartProcess(string file, string arguments, Dictionary<string, string> environment, bool inheritOutput = false)
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

    private static async Task WaitForPortAsync(int port, Process process)
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
