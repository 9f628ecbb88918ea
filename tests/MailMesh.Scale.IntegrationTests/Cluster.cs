using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using MailMesh.Delivery;
using MailMesh.Dns;
using MailMesh.Ingress;
using MailMesh.Policy;
using MailMesh.Queue;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Postgres;
using MailMesh.Testing.RabbitMq;
using MailMesh.Testing.Smtp;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Scale.IntegrationTests;

/// <summary>The five MailMesh services.</summary>
internal enum Service
{
    Ingress,
    Policy,
    Queue,
    Dns,
    Delivery,
}

/// <summary>
/// The distributed mode scaled out on one machine: one fresh PostgreSQL database and one RabbitMQ virtual host shared by
/// any number of replicas of each service, each replica a separate host with its own bus connection (in-process, so a
/// test can read its DI container and meters) or a separate operating-system process (so a test can send it SIGTERM).
/// DNS points <see cref="DestinationDomain"/> at an SMTP sink on 127.0.0.1.
/// </summary>
internal sealed class Cluster : IAsyncDisposable
{
    public const string DestinationDomain = "dest.test";
    public const string SenderDomain = "origin.test";

    private readonly List<WebApplication> _hosts = [];
    private readonly List<ServiceProcess> _processes = [];

    private Cluster(TestDatabase database, TestVirtualHost virtualHost, TestDnsServer dns, SmtpSink sink)
    {
        Database = database;
        VirtualHost = virtualHost;
        Dns = dns;
        Destination = sink;
    }

    public TestDatabase Database { get; }
    public TestVirtualHost VirtualHost { get; }
    public TestDnsServer Dns { get; }

    /// <summary>Receives mail for <see cref="DestinationDomain"/> and <see cref="SenderDomain"/> (MX 127.0.0.1).</summary>
    public SmtpSink Destination { get; }

    /// <summary>Settings every replica gets; a test may change them before starting replicas.</summary>
    public Dictionary<string, string> Settings { get; } = [];

    /// <summary>The in-process replicas, with the service each runs.</summary>
    public List<(Service Service, WebApplication Host)> Replicas { get; } = [];

    /// <summary>The spool, read through the first in-process replica.</summary>
    public ISpool Spool => _hosts[0].Services.GetRequiredService<ISpool>();

    public static async Task<Cluster> CreateAsync()
    {
        var database = await TestDatabase.CreateAsync("mailmesh_scale");
        var virtualHost = await TestVirtualHost.CreateAsync();
        var dns = TestDnsServer.Start();
        var sink = SmtpSink.Start(IPAddress.Loopback);
        dns.AddMx(DestinationDomain, 10, "mx." + DestinationDomain).AddAddress("mx." + DestinationDomain, "127.0.0.1");
        dns.AddMx(SenderDomain, 10, "mx." + SenderDomain).AddAddress("mx." + SenderDomain, "127.0.0.1");

        var cluster = new Cluster(database, virtualHost, dns, sink);
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["ConnectionStrings:Spool"] = database.ConnectionString,
            ["ConnectionStrings:RabbitMq"] = virtualHost.Uri.ToString(),
            ["Storage:Provider"] = "postgres",
            ["Storage:MigrateOnStart"] = "true",
            ["Urls"] = "http://127.0.0.1:0",
            ["Ingress:Listen"] = "127.0.0.1:0",
            ["Dns:Servers"] = dns.EndPoint.ToString(),
            ["Delivery:Port"] = sink.Port.ToString(CultureInfo.InvariantCulture),
            ["Delivery:HeloName"] = "mailmesh.test",
            ["Queue:FirstRetryDelay"] = "00:00:01",
            ["Queue:MaxRetryDelay"] = "00:00:02",
            ["Queue:Jitter"] = "0",
            ["Queue:PollInterval"] = "00:00:00.200",
            ["Queue:LeaseDuration"] = "00:00:30",
            ["Policy:ConnectionsPerMinutePerIp"] = "100000",
            ["Policy:MessagesPerMinutePerIp"] = "100000",
            ["Logging:LogLevel:Default"] = "Warning",
        })
        {
            cluster.Settings[key] = value;
        }

        return cluster;
    }

    /// <summary>Starts one in-process replica of <paramref name="service"/>; <paramref name="overrides"/> apply to it alone.</summary>
    public async Task<WebApplication> StartAsync(Service service, IReadOnlyDictionary<string, string>? overrides = null)
    {
        var settings = new Dictionary<string, string>(Settings);
        foreach (var (key, value) in overrides ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var args = settings.Select(pair => $"--{pair.Key}={pair.Value}").ToArray();
        var app = ServiceHost.Create(args, "mailmesh-" + service.ToString().ToLowerInvariant(), builder => _ = service switch
        {
            Service.Ingress => builder.AddIngress(),
            Service.Policy => builder.AddPolicy(),
            Service.Queue => builder.AddQueue(),
            Service.Dns => builder.AddDns(),
            _ => builder.AddDelivery(),
        });
        _hosts.Add(app);
        Replicas.Add((service, app));
        await app.StartAsync();
        return app;
    }

    /// <summary>
    /// Starts a replica as its own process (<c>dotnet services/MailMesh.X/bin/&lt;cfg&gt;/net10.0/MailMesh.X.dll</c>) and
    /// waits until the host reports it has started (for Ingress: listening; for every service: bus connected).
    /// </summary>
    public async Task<ServiceProcess> StartProcessAsync(Service service, IReadOnlyDictionary<string, string>? overrides = null)
    {
        var settings = new Dictionary<string, string>(Settings);
        foreach (var (key, value) in overrides ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var process = await ServiceProcess.StartAsync("MailMesh." + service, settings);
        _processes.Add(process);
        return process;
    }

    /// <summary>A loopback TCP port free at the moment of asking (for a process that must be told its SMTP port).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        foreach (var host in Enumerable.Reverse(_hosts))
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await host.StopAsync(stop.Token);
            }
            finally
            {
                await host.DisposeAsync();
            }
        }

        await Destination.DisposeAsync();
        Dns.Dispose();
        await VirtualHost.DisposeAsync();
        await Database.DisposeAsync();
    }
}

/// <summary>A MailMesh service running as an operating-system process, with its output kept for diagnostics.</summary>
internal sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private ServiceProcess(Process process, string name)
    {
        _process = process;
        Name = name;
    }

    public string Name { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything the process wrote so far, stdout and stderr interleaved.</summary>
    public string Output => string.Join('\n', _output);

    public static async Task<ServiceProcess> StartAsync(string project, IReadOnlyDictionary<string, string> settings)
    {
        var dll = ServiceBinary(project);
        var info = new ProcessStartInfo("dotnet", dll)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        foreach (var (key, value) in settings)
        {
            info.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        // Readiness and shutdown are read from the host's lifetime log lines.
        info.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";
        info.Environment["Logging__LogLevel__MailMesh"] = "Information";

        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {project}");
        var service = new ServiceProcess(process, project);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnLine(string? line)
        {
            if (line is null)
            {
                return;
            }

            service._output.Enqueue(line);
            if (line.Contains("Application started", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        }

        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var exited = process.WaitForExitAsync();
        var first = await Task.WhenAny(ready.Task, exited).WaitAsync(TimeSpan.FromSeconds(90));
        if (first == exited)
        {
            throw new InvalidOperationException($"{project} exited with code {process.ExitCode}:\n{service.Output}");
        }

        return service;
    }

    /// <summary>SIGTERM, as Kubernetes and systemd send it: the graceful stop. (Process.Kill sends SIGKILL.)</summary>
    public async Task TerminateAsync()
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", Id.ToString(CultureInfo.InvariantCulture)]))
            ?? throw new InvalidOperationException("could not run kill");
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -TERM {Id} exited with {kill.ExitCode}");
        }
    }

    /// <summary>Completes when the process has exited; fails after <paramref name="timeout"/>.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Name} (pid {Id}) did not exit within {timeout}:\n{Output}");
        }

        // WaitForExitAsync returns once the output streams are drained too, so Output is complete here.
        return _process.ExitCode;
    }

    /// <summary>The service's own build output, built alongside this test project in the same configuration.</summary>
    private static string ServiceBinary(string project)
    {
        var testDirectory = AppContext.BaseDirectory;
        var configuration = testDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
        var root = new DirectoryInfo(testDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "MailMesh.slnx")))
        {
            root = root.Parent;
        }

        var dll = Path.Combine(root?.FullName ?? throw new InvalidOperationException("repository root not found"),
            "services", project, "bin", configuration, "net10.0", project + ".dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException("build the solution first", dll);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
