using System.Diagnostics;
using System.Globalization;
using System.Net;
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

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// The distributed mode on one machine: a fresh PostgreSQL database and RabbitMQ virtual host, an in-process DNS
/// server whose MX records point at SMTP sinks on 127.0.0.1 and 127.0.0.2 (one shared port, which Delivery uses as
/// its destination port), and the five services, each a separate host with its own bus connection, or a separate
/// operating-system process where a test kills it.
/// </summary>
internal sealed class Mesh : IAsyncDisposable
{
    public const string DestinationDomain = "dest.test";
    public const string SenderDomain = "origin.test";

    private readonly List<WebApplication> _hosts = [];
    private readonly List<Process> _processes = [];
    private readonly IReadOnlyList<SmtpSink> _sinks;

    private Mesh(TestDatabase database, TestVirtualHost virtualHost, TestDnsServer dns, IReadOnlyList<SmtpSink> sinks)
    {
        Database = database;
        VirtualHost = virtualHost;
        Dns = dns;
        _sinks = sinks;
    }

    public TestDatabase Database { get; }
    public TestVirtualHost VirtualHost { get; }
    public TestDnsServer Dns { get; }

    /// <summary>Receives mail for <see cref="DestinationDomain"/> (MX 127.0.0.1).</summary>
    public SmtpSink Destination => _sinks[0];

    /// <summary>Receives mail for <see cref="SenderDomain"/> (MX 127.0.0.2): where DSNs to our senders arrive.</summary>
    public SmtpSink SenderMailbox => _sinks[1];

    public IPEndPoint Smtp { get; private set; } = null!;

    public ISpool Spool => _hosts[0].Services.GetRequiredService<ISpool>();

    /// <summary>Settings every service gets; a test may add or override some before <see cref="StartAsync"/>.</summary>
    public Dictionary<string, string> Settings { get; } = [];

    public static async Task<Mesh> CreateAsync()
    {
        var database = await TestDatabase.CreateAsync("mailmesh_e2e");
        var virtualHost = await TestVirtualHost.CreateAsync();
        var dns = TestDnsServer.Start();
        var sinks = SmtpSink.StartOnSharedPort(2);
        dns.AddMx(DestinationDomain, 10, "mx." + DestinationDomain).AddAddress("mx." + DestinationDomain, "127.0.0.1");
        dns.AddMx(SenderDomain, 10, "mx." + SenderDomain).AddAddress("mx." + SenderDomain, "127.0.0.2");

        var mesh = new Mesh(database, virtualHost, dns, sinks);
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["ConnectionStrings:Spool"] = database.ConnectionString,
            ["ConnectionStrings:RabbitMq"] = virtualHost.Uri.ToString(),
            ["Storage:Provider"] = "postgres",
            ["Storage:MigrateOnStart"] = "true",
            ["Urls"] = "http://127.0.0.1:0",
            ["Ingress:Listen"] = "127.0.0.1:0",
            ["Dns:Servers"] = dns.EndPoint.ToString(),
            ["Delivery:Port"] = sinks[0].Port.ToString(CultureInfo.InvariantCulture),
            ["Delivery:HeloName"] = "mailmesh.test",
            ["Queue:FirstRetryDelay"] = "00:00:01",
            ["Queue:MaxRetryDelay"] = "00:00:02",
            ["Queue:Jitter"] = "0",
            ["Queue:PollInterval"] = "00:00:00.200",
            ["Queue:LeaseDuration"] = "00:00:15",
            ["Logging:LogLevel:Default"] = "Warning",
        })
        {
            mesh.Settings[key] = value;
        }

        return mesh;
    }

    /// <summary>Starts the services in dependency order; Queue first, so its migration creates the schema.</summary>
    public async Task StartAsync(int deliveryHosts = 1, int deliveryProcesses = 0)
    {
        await StartHostAsync("mailmesh-queue", b => b.AddQueue());
        await StartHostAsync("mailmesh-policy", b => b.AddPolicy());
        await StartHostAsync("mailmesh-dns", b => b.AddDns());
        for (var i = 0; i < deliveryHosts; i++)
        {
            await StartHostAsync("mailmesh-delivery", b => b.AddDelivery());
        }

        for (var i = 0; i < deliveryProcesses; i++)
        {
            await StartDeliveryProcessAsync();
        }

        var ingress = await StartHostAsync("mailmesh-ingress", b => b.AddIngress());
        Smtp = ingress.Services.GetRequiredService<IngressEndpoints>().Smtp[0];
    }

    private async Task<WebApplication> StartHostAsync(string name, Action<WebApplicationBuilder> configure)
    {
        var args = Settings.Select(pair => $"--{pair.Key}={pair.Value}").ToArray();
        var app = ServiceHost.Create(args, name, configure);
        _hosts.Add(app);
        await app.StartAsync();
        return app;
    }

    /// <summary>A Delivery service as its own process (dotnet MailMesh.Delivery.dll), so a test can kill it.</summary>
    public async Task<Process> StartDeliveryProcessAsync()
    {
        var dll = ServiceBinary("MailMesh.Delivery");
        var info = new ProcessStartInfo("dotnet", dll)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        foreach (var (key, value) in Settings)
        {
            info.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        // Readiness is read from the host's lifetime log line.
        info.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";

        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start the Delivery process");
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data?.Contains("Application started", StringComparison.Ordinal) == true)
            {
                ready.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _processes.Add(process);
        var exited = process.WaitForExitAsync();
        var first = await Task.WhenAny(ready.Task, exited).WaitAsync(TimeSpan.FromSeconds(60));
        if (first == exited)
        {
            throw new InvalidOperationException($"the Delivery process exited with code {process.ExitCode}");
        }

        return process;
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
        foreach (var process in _processes)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            process.Dispose();
        }

        foreach (var host in Enumerable.Reverse(_hosts))
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await host.StopAsync(stop.Token);
            }
            finally
            {
                await host.DisposeAsync();
            }
        }

        foreach (var sink in _sinks)
        {
            await sink.DisposeAsync();
        }

        Dns.Dispose();
        await VirtualHost.DisposeAsync();
        await Database.DisposeAsync();
    }
}
