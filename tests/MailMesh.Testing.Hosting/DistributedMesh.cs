using System.Globalization;
using System.Net;
using MailMesh.Delivery;
using MailMesh.Dns;
using MailMesh.Ingress;
using MailMesh.Ingress.Http;
using MailMesh.Mailbox;
using MailMesh.Policy;
using MailMesh.Queue;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Postgres;
using MailMesh.Testing.RabbitMq;
using MailMesh.Testing.Smtp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Testing.Hosting;

/// <summary>
/// The distributed mode on one machine: a fresh PostgreSQL database and RabbitMQ virtual host, an in-process DNS
/// server whose MX records point at SMTP sinks on loopback (one port, which Delivery uses as its destination port),
/// and any number of replicas of each of the five services, each with its own bus connection: in-process hosts built
/// as the service's Program.cs builds them (so a test can read a replica's DI container, meters and HTTP endpoints),
/// or operating-system processes (so a test can send one SIGTERM or SIGKILL).
/// </summary>
public sealed class DistributedMesh : IAsyncDisposable
{
    public const string DestinationDomain = "dest.test";
    public const string SenderDomain = "origin.test";

    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(15);

    private readonly List<(MeshService Service, WebApplication Host)> _hosts = [];
    private readonly List<ServiceProcess> _processes = [];
    private readonly IReadOnlyList<SmtpSink> _sinks;

    private DistributedMesh(TestDatabase database, TestVirtualHost virtualHost, TestDnsServer dns, IReadOnlyList<SmtpSink> sinks)
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

    /// <summary>
    /// Receives mail for <see cref="SenderDomain"/>, where DSNs to our senders arrive: a sink of its own on 127.0.0.2, or
    /// <see cref="Destination"/> itself when the mesh was created with one sink.
    /// </summary>
    public SmtpSink SenderMailbox => _sinks[^1];

    /// <summary>The SMTP endpoint of the first in-process Ingress replica.</summary>
    public IPEndPoint Smtp => SmtpEndpoint(Host(MeshService.Ingress));

    /// <summary>The spool, read through the first in-process replica.</summary>
    public ISpool Spool => _hosts[0].Host.Services.GetRequiredService<ISpool>();

    /// <summary>Settings every replica gets; a test may add or override some before starting replicas.</summary>
    public Dictionary<string, string> Settings { get; } = [];

    /// <summary>The in-process replicas in the order they were started, with the service each runs.</summary>
    public IReadOnlyList<(MeshService Service, WebApplication Host)> Replicas => _hosts;

    /// <summary>
    /// A fresh database (named after <paramref name="databasePrefix"/>), virtual host, DNS server and sinks, and the
    /// settings every replica gets: short retry and poll intervals, ephemeral ports on 127.0.0.1, warnings only.
    /// </summary>
    /// <param name="databasePrefix">The prefix of the fresh PostgreSQL database's name.</param>
    /// <param name="separateSenderMailbox">
    /// True: <see cref="SenderDomain"/>'s MX is 127.0.0.2 with a sink of its own; false: one sink on 127.0.0.1 takes
    /// mail for both domains.
    /// </param>
    public static async Task<DistributedMesh> CreateAsync(string databasePrefix, bool separateSenderMailbox = true)
    {
        var database = await TestDatabase.CreateAsync(databasePrefix);
        var virtualHost = await TestVirtualHost.CreateAsync();
        var dns = TestDnsServer.Start();
        var sinks = separateSenderMailbox ? SmtpSink.StartOnSharedPort(2) : [SmtpSink.Start(IPAddress.Loopback)];
        dns.AddMx(DestinationDomain, 10, "mx." + DestinationDomain).AddAddress("mx." + DestinationDomain, "127.0.0.1");
        dns.AddMx(SenderDomain, 10, "mx." + SenderDomain).AddAddress("mx." + SenderDomain, separateSenderMailbox ? "127.0.0.2" : "127.0.0.1");

        var mesh = new DistributedMesh(database, virtualHost, dns, sinks);
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["ConnectionStrings:Spool"] = database.ConnectionString,
            ["ConnectionStrings:RabbitMq"] = virtualHost.Uri.ToString(),
            ["Storage:Provider"] = "postgres",
            ["Storage:MigrateOnStart"] = "true",
            ["Urls"] = "http://127.0.0.1:0",
            ["Ingress:Listen"] = "127.0.0.1:0",
            ["Mailbox:Pop3Listen"] = "127.0.0.1:0",
            ["Mailbox:ImapListen"] = "127.0.0.1:0",
            ["Dns:Servers"] = dns.EndPoint.ToString(),
            ["Delivery:Port"] = sinks[0].Port.ToString(CultureInfo.InvariantCulture),
            ["Delivery:HeloName"] = "mailmesh.test",
            ["Policy:RelayNetworks"] = "127.0.0.0/8,::1/128",
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

    /// <summary>
    /// Starts one replica of every service in dependency order (Queue first, so its migration creates the schema;
    /// Ingress last, so nothing is accepted before it can be delivered), with <paramref name="deliveryHosts"/>
    /// in-process and <paramref name="deliveryProcesses"/> operating-system Delivery replicas.
    /// </summary>
    public async Task StartAsync(int deliveryHosts = 1, int deliveryProcesses = 0)
    {
        await StartAsync(MeshService.Queue);
        await StartAsync(MeshService.Policy);
        await StartAsync(MeshService.Dns);
        for (var i = 0; i < deliveryHosts; i++)
        {
            await StartAsync(MeshService.Delivery);
        }

        for (var i = 0; i < deliveryProcesses; i++)
        {
            await StartProcessAsync(MeshService.Delivery);
        }

        await StartAsync(MeshService.Ingress);
    }

    /// <summary>
    /// Starts one in-process replica of <paramref name="service"/> as its Program.cs does; <paramref name="overrides"/>
    /// apply to it alone. It is stopped with the mesh.
    /// </summary>
    public async Task<WebApplication> StartAsync(MeshService service, IReadOnlyDictionary<string, string>? overrides = null)
    {
        var args = SettingsWith(overrides).Select(pair => $"--{pair.Key}={pair.Value}").ToArray();
        var name = "mailmesh-" + service.ToString().ToLowerInvariant();
        var app = service switch
        {
            MeshService.Ingress => ServiceHost.Create(args, name, b => b.AddIngress().AddIngressHttpApi(), a => a.MapIngressHttpApi()),
            MeshService.Policy => ServiceHost.Create(args, name, b => b.AddPolicy(), a => a.MapPolicyEndpoints().MapPolicyAdminEndpoints()),
            MeshService.Queue => ServiceHost.Create(args, name, b => b.AddQueue(), a => a.MapQueueEndpoints().MapQueueAdminEndpoints()),
            MeshService.Dns => ServiceHost.Create(args, name, b => b.AddDns()),
            MeshService.Delivery => ServiceHost.Create(args, name, b => b.AddDelivery()),
            MeshService.Mailbox => ServiceHost.Create(args, name, b => b.AddMailbox(), a => a.MapMailbox()),
            _ => throw new ArgumentOutOfRangeException(nameof(service), service, null),
        };
        _hosts.Add((service, app));
        await app.StartAsync();
        return app;
    }

    /// <summary>
    /// Starts a replica of <paramref name="service"/> as its own process; <paramref name="overrides"/> apply to it alone.
    /// It is killed with the mesh if still running.
    /// </summary>
    public async Task<ServiceProcess> StartProcessAsync(MeshService service, IReadOnlyDictionary<string, string>? overrides = null)
    {
        var process = await ServiceProcess.StartAsync("MailMesh." + service, SettingsWith(overrides));
        _processes.Add(process);
        return process;
    }

    /// <summary>The <paramref name="replica"/>th in-process replica of <paramref name="service"/>, in start order.</summary>
    public WebApplication Host(MeshService service, int replica = 0) =>
        _hosts.Where(h => h.Service == service).Select(h => h.Host).ElementAtOrDefault(replica)
            ?? throw new InvalidOperationException($"no in-process {service} replica {replica} was started");

    /// <summary>An HTTP client for the HTTP endpoint of the first in-process replica of <paramref name="service"/>.</summary>
    public HttpClient HttpClient(MeshService service) => HttpClientFor(Host(service));

    /// <summary>
    /// Polls the spool (the truth) until the status of message <paramref name="id"/> satisfies
    /// <paramref name="condition"/>; fails after <paramref name="timeout"/>, naming each recipient's last state.
    /// </summary>
    public async Task<MessageStatus> WaitForStatusAsync(Guid id, Func<MessageStatus, bool> condition, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var deadline = DateTimeOffset.UtcNow + timeout;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        MessageStatus? status;
        do
        {
            status = await Spool.GetStatusAsync(id, CancellationToken.None);
            if (status is not null && condition(status))
            {
                return status;
            }
        }
        while (DateTimeOffset.UtcNow < deadline && await poll.WaitForNextTickAsync());

        var recipients = status is null ? "unknown message" : string.Join(", ", status.Recipients.Select(r => $"{r.Address}={r.State} ({r.LastReplyCode} {r.LastReplyText})"));
        throw new TimeoutException($"message {id} never reached the expected state; last: {recipients}");
    }

    /// <summary>The first SMTP endpoint an in-process Ingress replica listens on.</summary>
    public static IPEndPoint SmtpEndpoint(WebApplication ingress)
    {
        ArgumentNullException.ThrowIfNull(ingress);
        return ingress.Services.GetRequiredService<IngressEndpoints>().Smtp[0];
    }

    /// <summary>An HTTP client for an in-process replica's own HTTP endpoint (/healthz, /readyz, /metrics, APIs).</summary>
    public static HttpClient HttpClientFor(WebApplication host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var address = host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .First(a => a.StartsWith("http://", StringComparison.Ordinal));
        return new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(30) };
    }

    private Dictionary<string, string> SettingsWith(IReadOnlyDictionary<string, string>? overrides)
    {
        var settings = new Dictionary<string, string>(Settings);
        foreach (var (key, value) in overrides ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        return settings;
    }

    /// <summary>Kills the processes still running, stops the replicas in reverse start order, then the peers.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        foreach (var (_, host) in Enumerable.Reverse(_hosts))
        {
            using var stop = new CancellationTokenSource(StopTimeout);
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
