using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using MailMesh.Delivery;
using MailMesh.Dns;
using MailMesh.Ingress;
using MailMesh.Ingress.Http;
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

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>
/// The distributed mode as production runs it, in one test process: a fresh PostgreSQL database and RabbitMQ virtual
/// host, an in-process DNS server, SMTP sinks for the destination and for the sender's domain (where DSNs arrive), and
/// the five services, each its own host with its own bus connection and HTTP endpoints (/metrics, /healthz, /readyz),
/// mapped as each service's Program.cs maps them.
/// </summary>
/// <remarks>
/// The end-to-end tests have a mesh of their own that also runs services as processes; this one keeps the hosts by
/// service name so a test can reach a service's HTTP endpoints, and starts Ingress with its HTTP submission API.
/// </remarks>
internal sealed class TelemetryMesh : IAsyncDisposable
{
    public const string DestinationDomain = "dest.test";
    public const string SenderDomain = "origin.test";
    public const string ApiKeyName = "telemetry-tests";
    public const string ApiKey = "mm_test_0123456789abcdef0123456789abcdef";

    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private readonly List<WebApplication> _hosts = [];
    private readonly Dictionary<string, WebApplication> _byService = new(StringComparer.Ordinal);
    private readonly IReadOnlyList<SmtpSink> _sinks;

    private TelemetryMesh(TestDatabase database, TestVirtualHost virtualHost, TestDnsServer dns, IReadOnlyList<SmtpSink> sinks)
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

    public ISpool Spool => Host("queue").Services.GetRequiredService<ISpool>();

    /// <summary>Settings every service gets; a test may override some before <see cref="StartAsync"/>.</summary>
    public Dictionary<string, string> Settings { get; } = [];

    public static async Task<TelemetryMesh> CreateAsync()
    {
        var database = await TestDatabase.CreateAsync("mailmesh_telemetry");
        var virtualHost = await TestVirtualHost.CreateAsync();
        var dns = TestDnsServer.Start();
        var sinks = SmtpSink.StartOnSharedPort(2);
        dns.AddMx(DestinationDomain, 10, "mx." + DestinationDomain).AddAddress("mx." + DestinationDomain, "127.0.0.1");
        dns.AddMx(SenderDomain, 10, "mx." + SenderDomain).AddAddress("mx." + SenderDomain, "127.0.0.2");

        var mesh = new TelemetryMesh(database, virtualHost, dns, sinks);
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["ConnectionStrings:Spool"] = database.ConnectionString,
            ["ConnectionStrings:RabbitMq"] = virtualHost.Uri.ToString(),
            ["Storage:Provider"] = "postgres",
            ["Storage:MigrateOnStart"] = "true",
            ["Urls"] = "http://127.0.0.1:0",
            ["Ingress:Listen"] = "127.0.0.1:0",
            ["Ingress:Api:Keys:0:Name"] = ApiKeyName,
            ["Ingress:Api:Keys:0:Hash"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ApiKey))),
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
    public async Task StartAsync()
    {
        await StartServiceAsync("queue", b => b.AddQueue(), app => app.MapQueueEndpoints());
        await StartServiceAsync("policy", b => b.AddPolicy(), app => app.MapPolicyEndpoints());
        await StartServiceAsync("dns", b => b.AddDns());
        await StartServiceAsync("delivery", b => b.AddDelivery());
        var ingress = await StartServiceAsync("ingress", b => b.AddIngress().AddIngressHttpApi(), app => app.MapIngressHttpApi());
        Smtp = ingress.Services.GetRequiredService<IngressEndpoints>().Smtp[0];
    }

    /// <summary>The host of a service started by <see cref="StartAsync"/> ("ingress", "policy", "queue", "dns", "delivery").</summary>
    public WebApplication Host(string service) => _byService[service];

    /// <summary>An HTTP client for a service's own HTTP endpoint.</summary>
    public HttpClient HttpClient(string service) => HttpClientFor(Host(service));

    /// <summary>
    /// Starts one more host for <paramref name="service"/> with some settings overridden (a second replica, or one with
    /// a broken dependency). It is stopped with the mesh.
    /// </summary>
    public Task<WebApplication> StartExtraAsync(
        string service,
        Action<WebApplicationBuilder> configure,
        IReadOnlyDictionary<string, string> overrides,
        Action<WebApplication>? map = null) =>
        StartHostAsync("mailmesh-" + service, configure, map, overrides);

    public static HttpClient HttpClientFor(WebApplication host)
    {
        var address = host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .First(a => a.StartsWith("http://", StringComparison.Ordinal));
        return new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>A TCP port on 127.0.0.1 that nothing listens on: connecting to it is refused at once.</summary>
    public static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private async Task<WebApplication> StartServiceAsync(string service, Action<WebApplicationBuilder> configure, Action<WebApplication>? map = null)
    {
        var app = await StartHostAsync("mailmesh-" + service, configure, map, overrides: null);
        _byService[service] = app;
        return app;
    }

    private async Task<WebApplication> StartHostAsync(
        string name,
        Action<WebApplicationBuilder> configure,
        Action<WebApplication>? map,
        IReadOnlyDictionary<string, string>? overrides)
    {
        var settings = new Dictionary<string, string>(Settings);
        foreach (var (key, value) in overrides ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var args = settings.Select(pair => $"--{pair.Key}={pair.Value}").ToArray();
        var app = ServiceHost.Create(args, name, configure, map);
        _hosts.Add(app);
        await app.StartAsync();
        return app;
    }

    public async ValueTask DisposeAsync()
    {
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
