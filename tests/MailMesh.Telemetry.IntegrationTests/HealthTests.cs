using System.Globalization;
using System.Net;
using MailMesh.Testing.Hosting;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>/healthz says the process is alive; /readyz says its dependencies (RabbitMQ, the store) answer.</summary>
public sealed class HealthTests
{
    private static readonly string[] Services = ["ingress", "policy", "queue", "dns", "delivery"];

    [Fact]
    public async Task Every_service_is_alive_and_ready_when_RabbitMQ_and_PostgreSQL_answer()
    {
        await using var mesh = await TelemetryMesh.CreateAsync();
        await mesh.StartAsync();

        foreach (var service in Services)
        {
            using var http = mesh.HttpClient(TelemetryMesh.Service(service));
            using var alive = await http.GetAsync("/healthz");
            Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
            using var ready = await http.GetAsync("/readyz");
            Assert.True(ready.StatusCode == HttpStatusCode.OK, $"{service} /readyz: {(int)ready.StatusCode} {await ready.Content.ReadAsStringAsync()}");
        }
    }

    [Theory]
    [InlineData("ingress")]
    [InlineData("delivery")]
    public async Task A_service_whose_store_is_unreachable_is_alive_but_not_ready(string service)
    {
        await using var mesh = await TelemetryMesh.CreateAsync();
        await mesh.StartAsync();

        // A second replica whose spool is a port nothing listens on; RabbitMQ is fine.
        var port = LoopbackPort.Free().ToString(CultureInfo.InvariantCulture);
        var broken = await mesh.StartAsync(
            TelemetryMesh.Service(service),
            new Dictionary<string, string>
            {
                ["ConnectionStrings:Spool"] = $"Host=127.0.0.1;Port={port};Username=mailmesh;Password=mailmesh;Database=mailmesh;Timeout=2",
                ["Storage:MigrateOnStart"] = "false",
            });

        using var http = DistributedMesh.HttpClientFor(broken);
        using var alive = await http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
        using var ready = await http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains("Unhealthy", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // The healthy replica beside it stays ready.
        using var healthy = mesh.HttpClient(TelemetryMesh.Service(service));
        using var stillReady = await healthy.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, stillReady.StatusCode);
    }
}
