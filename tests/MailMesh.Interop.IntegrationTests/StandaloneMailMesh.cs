using System.Globalization;
using System.Net;
using MailMesh.Ingress;
using MailMesh.ServiceDefaults;
using MailMesh.Standalone;
using MailMesh.Storage;
using MailMesh.Testing.Dns;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Interop.IntegrationTests;

/// <summary>
/// MailMesh as it runs on a laptop (Standalone: all five services in one host, in-memory bus, SQLite spool in a
/// temporary directory), listening for SMTP on 127.0.0.1:0 with STARTTLS (self-signed certificate), resolving through
/// a <see cref="TestDnsServer"/> and delivering to every exchanger on one port.
/// </summary>
internal sealed class StandaloneMailMesh : IAsyncDisposable
{
    /// <summary>The name in MailMesh's greeting and Received headers.</summary>
    public const string HostName = "mailmesh.test";

    /// <summary>What MailMesh's Delivery says in EHLO.</summary>
    public const string HeloName = "client.mailmesh.test";

    private readonly WebApplication _app;
    private readonly string _directory;

    private StandaloneMailMesh(WebApplication app, string directory)
    {
        _app = app;
        _directory = directory;
    }

    /// <summary>The SMTP (relay/MX) endpoint.</summary>
    public IPEndPoint Smtp => _app.Services.GetRequiredService<IngressEndpoints>().Smtp[0];

    public ISpool Spool => _app.Services.GetRequiredService<ISpool>();

    public static async Task<StandaloneMailMesh> StartAsync(TestDnsServer dns, int deliveryPort, IReadOnlyDictionary<string, string>? extra = null)
    {
        var directory = Directory.CreateTempSubdirectory("mailmesh-interop-").FullName;
        var settings = new Dictionary<string, string>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Storage:Provider"] = "sqlite",
            ["Storage:SqlitePath"] = Path.Combine(directory, "mailmesh.db"),
            ["Storage:MigrateOnStart"] = "true",
            ["Ingress:Listen"] = "127.0.0.1:0",
            ["Mailbox:Pop3Listen"] = "127.0.0.1:0",
            ["Mailbox:ImapListen"] = "127.0.0.1:0",
            ["Ingress:HostName"] = HostName,
            ["Ingress:Tls:SelfSigned"] = "true",
            ["Dns:Servers"] = dns.EndPoint.ToString(),
            ["Delivery:Port"] = deliveryPort.ToString(CultureInfo.InvariantCulture),
            ["Delivery:HeloName"] = HeloName,
            ["Delivery:Tls:Mode"] = "Opportunistic",
            ["Queue:FirstRetryDelay"] = "00:00:01",
            ["Queue:MaxRetryDelay"] = "00:00:02",
            ["Queue:Jitter"] = "0",
            ["Queue:PollInterval"] = "00:00:00.200",
            ["Queue:LeaseDuration"] = "00:00:15",
            ["Queue:Hostname"] = HostName,
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var args = settings.Select(pair => $"--{pair.Key}={pair.Value}").ToArray();
        var app = ServiceHost.Create(args, "mailmesh-standalone", b => b.AddStandalone(), a => a.MapStandaloneEndpoints(), BusTransport.InMemory);
        var mesh = new StandaloneMailMesh(app, directory);
        try
        {
            await app.StartAsync();
            return mesh;
        }
        catch
        {
            await mesh.DisposeAsync();
            throw;
        }
    }

    /// <summary>Polls the spool (the truth) until every recipient of the message is in <paramref name="state"/>.</summary>
    public async Task<MessageStatus> WaitForStateAsync(Guid id, RecipientState state, TimeSpan timeout)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        MessageStatus? status;
        do
        {
            status = await Spool.GetStatusAsync(id, CancellationToken.None);
            if (status is not null && status.Recipients.All(r => r.State == state))
            {
                return status;
            }
        }
        while (DateTimeOffset.UtcNow < deadline && await poll.WaitForNextTickAsync());

        var recipients = status is null ? "unknown message" : string.Join(", ", status.Recipients.Select(r => $"{r.Address}={r.State} ({r.LastReplyCode} {r.LastReplyText})"));
        throw new TimeoutException($"message {id} never reached {state}; last: {recipients}");
    }

    public async ValueTask DisposeAsync()
    {
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            try
            {
                await _app.StopAsync(stop.Token);
            }
            finally
            {
                await _app.DisposeAsync();
            }
        }

        Directory.Delete(_directory, recursive: true);
    }
}
