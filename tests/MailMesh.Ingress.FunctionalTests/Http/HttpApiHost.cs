using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using MailMesh.Ingress.Http;
using MailMesh.Policy;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace MailMesh.Ingress.FunctionalTests.Http;

/// <summary>
/// The real Ingress with the HTTP submission API, in-process: AddIngress + AddIngressHttpApi + MapIngressHttpApi, HTTP
/// and SMTP on 127.0.0.1:0, a SQLite spool, the in-memory bus with the scripted Policy responder of
/// <see cref="IngressHost"/> (whose fixture maps no API endpoints, hence this host; the test doubles are shared).
/// </summary>
internal sealed class HttpApiHost : IAsyncDisposable
{
    public const string KeyName = "billing-app";
    public const string Key = "mm_live_4f3c2a1b0e9d8c7b6a5f4e3d2c1b0a99";
    public const string OtherKeyName = "crm";
    public const string OtherKey = "mm_live_00112233445566778899aabbccddeeff";

    private readonly WebApplication _app;
    private readonly string _directory;

    private HttpApiHost(WebApplication app, string directory, Uri baseAddress)
    {
        _app = app;
        _directory = directory;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public PolicyScript Policy => _app.Services.GetRequiredService<PolicyScript>();

    public TestSpool Spool => _app.Services.GetRequiredService<TestSpool>();

    public Announcements Announcements => _app.Services.GetRequiredService<Announcements>();

    public IServiceProvider Services => _app.Services;

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>A client that sends <paramref name="key"/> as its bearer token (none when null).</summary>
    public HttpClient CreateClient(string? key = Key)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    public static async Task<HttpApiHost> StartAsync(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? configure = null)
    {
        var directory = Directory.CreateTempSubdirectory("mailmesh-ingress-http-").FullName;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing" });
        var configuration = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Ingress:Listen"] = "127.0.0.1:0",
            ["Ingress:HostName"] = IngressHost.HostName,
            ["Ingress:PolicyTimeout"] = "00:00:05",
            ["Ingress:SpoolTimeout"] = "00:00:05",
            ["Ingress:Api:Keys:0:Name"] = KeyName,
            ["Ingress:Api:Keys:0:Hash"] = Hash(Key),
            ["Ingress:Api:Keys:1:Name"] = OtherKeyName,
            ["Ingress:Api:Keys:1:Hash"] = Hash(OtherKey).ToUpperInvariant(),
            ["Ingress:Api:RetryAfter"] = "00:00:07",
            ["Storage:Provider"] = "sqlite",
            ["Storage:SqlitePath"] = Path.Combine(directory, "spool.db"),
            ["Storage:MigrateOnStart"] = "true",
        };
        foreach (var (key, value) in settings ?? [])
        {
            configuration[key] = value;
        }

        builder.Configuration.AddInMemoryCollection(configuration);
        builder.AddServiceDefaults("mailmesh-ingress-http-tests");
        builder.AddIngress();
        builder.AddIngressHttpApi();
        builder.Services.AddSingleton<PolicyScript>();
        builder.Services.AddSingleton<Announcements>();
        builder.Services.RemoveAll<IPolicyChecks>();
        builder.Services.AddSingleton<IPolicyChecks, ScriptedPolicyChecks>();
        builder.AddBusPart(bus => bus.AddConsumer<MessageReceivedConsumer>());
        builder.AddMailMeshBus(BusTransport.InMemory);
        builder.Services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);

        var spool = builder.Services.Last(d => d.ServiceType == typeof(ISpool));
        builder.Services.Remove(spool);
        builder.Services.AddSingleton(sp => new TestSpool((ISpool)spool.ImplementationFactory!(sp)));
        builder.Services.AddSingleton<ISpool>(sp => sp.GetRequiredService<TestSpool>());
        configure?.Invoke(builder.Services);

        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapIngressHttpApi();
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            Directory.Delete(directory, recursive: true);
            throw;
        }

        var smtpPorts = app.Services.GetRequiredService<IngressEndpoints>().Smtp.Select(e => e.Port).ToHashSet();
        var http = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a))
            .Single(u => !smtpPorts.Contains(u.Port));
        return new HttpApiHost(app, directory, http);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
