using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace MailMesh.Testing.Https;

/// <summary>
/// An HTTPS server on a free loopback port serving MTA-STS policies (RFC 8461 §3.3) at
/// <c>/.well-known/mta-sts.txt</c>, chosen by the Host header (<c>mta-sts.&lt;domain&gt;</c>). Tests set a policy, a
/// status code or a redirect per domain, and count the fetches. Delivery reaches it through
/// Delivery:Tls:MtaSts:TestOnlyPolicyEndpoint.
/// </summary>
public sealed class MtaStsPolicyServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, (int Status, string Body, string? Location)> _policies = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, int> _fetches = new(StringComparer.OrdinalIgnoreCase);

    private MtaStsPolicyServer(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    /// <summary>"127.0.0.1:port", for Delivery:Tls:MtaSts:TestOnlyPolicyEndpoint.</summary>
    public string Endpoint => $"127.0.0.1:{Port}";

    /// <summary>Starts the server with <paramref name="certificate"/> (it should name every mta-sts.&lt;domain&gt; used).</summary>
    public static async Task<MtaStsPolicyServer> StartAsync(X509Certificate2 certificate)
    {
        var port = Infrastructure.LoopbackPort.Free();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, port, listen => listen.UseHttps(certificate)));
        var app = builder.Build();
        MtaStsPolicyServer? server = null;
        app.MapGet("/.well-known/mta-sts.txt", (HttpContext context) =>
        {
            var host = context.Request.Host.Host;
            var domain = host.StartsWith("mta-sts.", StringComparison.OrdinalIgnoreCase) ? host["mta-sts.".Length..] : host;
            server!._fetches.AddOrUpdate(domain, 1, (_, n) => n + 1);
            if (!server._policies.TryGetValue(domain, out var policy))
            {
                return Results.NotFound();
            }

            if (policy.Location is not null)
            {
                return Results.Redirect(policy.Location);
            }

            return policy.Status == 200 ? Results.Text(policy.Body, "text/plain") : Results.StatusCode(policy.Status);
        });
        app.MapPost("/tlsrpt", async (HttpContext context) =>
        {
            // A TLS-RPT receiver (RFC 8460 §5.4): keeps what was posted.
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            server!.Posted.Enqueue((context.Request.ContentType ?? string.Empty, body.ToArray()));
            return Results.Ok();
        });
        server = new MtaStsPolicyServer(app, port);
        await app.StartAsync();
        return server;
    }

    /// <summary>Serves an STSv1 policy for <paramref name="domain"/>.</summary>
    public void SetPolicy(string domain, string mode, IEnumerable<string> mx, long maxAge = 86400) =>
        _policies[domain] = (200, $"version: STSv1\r\nmode: {mode}\r\n{string.Concat(mx.Select(m => $"mx: {m}\r\n"))}max_age: {maxAge}\r\n", null);

    /// <summary>Answers the policy URL of <paramref name="domain"/> with a bare status code.</summary>
    public void SetStatus(string domain, int status) => _policies[domain] = (status, string.Empty, null);

    /// <summary>Answers the policy URL of <paramref name="domain"/> with a redirect (which RFC 8461 §3.3 forbids following).</summary>
    public void SetRedirect(string domain, string location) => _policies[domain] = (302, string.Empty, location);

    /// <summary>What was POSTed to /tlsrpt: content type and body.</summary>
    public ConcurrentQueue<(string ContentType, byte[] Body)> Posted { get; } = new();

    /// <summary>How many times the policy of <paramref name="domain"/> was fetched.</summary>
    public int Fetches(string domain) => _fetches.TryGetValue(domain, out var n) ? n : 0;

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
