using System.Net;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>
/// The key instruments of docs/telemetry.md move when mail flows: one message delivered and one bounced (whose DSN is
/// delivered to the sender's domain), measured as the OpenTelemetry SDK sees them and as Prometheus scrapes them.
/// </summary>
public sealed class MetricsTests
{
    private const string Delivered = "delivered";
    private const string Bounced = "bounced";

    [Fact]
    public async Task One_delivered_and_one_bounced_message_move_the_key_instruments()
    {
        using var metrics = new MetricRecorder();
        await using var mesh = await TelemetryMesh.CreateAsync();
        mesh.Destination.RecipientReplies["nobody@dest.test"] = "550 5.1.1 No such user here";
        await mesh.StartAsync();

        // One after the other, so the second MX lookup of dest.test is answered from the cache.
        var delivered = await Mail.SendAsync(mesh, Mail.New("delivered", "ok@" + TelemetryMesh.DestinationDomain));
        await Mail.WaitForStateAsync(mesh, delivered, RecipientState.Delivered);
        var bounced = await Mail.SendAsync(mesh, Mail.New("bounced", "nobody@" + TelemetryMesh.DestinationDomain));
        await Mail.WaitForStateAsync(mesh, bounced, RecipientState.Bounced);
        await mesh.SenderMailbox.WaitForMessagesAsync(1, TelemetryMesh.Patience);

        // Ingress: two messages committed over SMTP, their sizes and acceptance times, two sessions.
        await metrics.WaitForAsync("mailmesh.ingress.messages.accepted", 2, ("mailmesh.origin", "smtp"));
        Assert.Equal(2, metrics.Sum("mailmesh.ingress.messages.accepted"));
        Assert.Equal(2, metrics.Of("mailmesh.ingress.message.size").Count);
        Assert.All(metrics.Of("mailmesh.ingress.accept.duration"), m => Assert.Equal("s", m.Unit));
        Assert.True(metrics.Sum("mailmesh.smtp.sessions") >= 2);

        // Policy: the connection, each recipient and each message were decided, and accepted.
        foreach (var check in new[] { "connection", "recipient", "message" })
        {
            await metrics.WaitForAsync("mailmesh.policy.decisions", 2, ("mailmesh.policy.check", check), ("mailmesh.policy.decision", "accept"));
        }

        // Delivery: the message and the DSN delivered, one bounced, each attempt with its server and duration.
        await metrics.WaitForAsync("mailmesh.delivery.attempts", 2, ("mailmesh.delivery.outcome", Delivered));
        await metrics.WaitForAsync("mailmesh.delivery.attempts", 1, ("mailmesh.delivery.outcome", Bounced));
        Assert.Equal(1, metrics.Sum("mailmesh.delivery.attempts", ("mailmesh.delivery.outcome", Bounced)));
        Assert.All(metrics.Of("mailmesh.delivery.attempts"), m => Assert.Contains(m.Tags["server.address"], new[] { "127.0.0.1", "127.0.0.2" }));
        Assert.Equal(metrics.Of("mailmesh.delivery.attempts").Count, metrics.Of("mailmesh.delivery.attempt.duration").Count);
        await metrics.WaitForAsync("mailmesh.delivery.recipients", 1, ("mailmesh.delivery.outcome", Bounced));
        Assert.True(metrics.Sum("mailmesh.delivery.connections.opened") >= 1);

        // Queue: claims, results applied by the state they reached, the failure DSN, end-to-end latency.
        Assert.True(metrics.Sum("mailmesh.queue.claimed") >= 3);
        await metrics.WaitForAsync("mailmesh.queue.recipients.completed", 2, ("mailmesh.recipient.state", Delivered));
        await metrics.WaitForAsync("mailmesh.queue.recipients.completed", 1, ("mailmesh.recipient.state", Bounced));
        Assert.Equal(1, metrics.Sum("mailmesh.queue.dsn.generated", ("mailmesh.dsn.kind", "failure")));
        var latency = metrics.Of("mailmesh.delivery.latency");
        Assert.True(latency.Count >= 2, "the delivered message and the DSN record their latency");
        Assert.All(latency, m => Assert.True(m.Value >= 0 && m.Unit == "s"));

        // Dns: dest.test resolved once and then answered from Delivery's own cache (no ResolveMx on the bus); origin.test
        // (the DSN) resolved.
        Assert.True(metrics.Sum("mailmesh.dns.cache.misses") >= 2, "dest.test and origin.test miss the cache once each");
        Assert.True(metrics.Sum("mailmesh.delivery.mx_lookups", ("mailmesh.dns.cache", "hit")) >= 1, "the second message to dest.test hits Delivery's cache");
        Assert.True(metrics.Sum("mailmesh.delivery.mx_lookups", ("mailmesh.dns.cache", "miss")) >= 2, "dest.test and origin.test are asked of the Dns service once each");
        Assert.True(metrics.Sum("mailmesh.dns.lookups", ("dns.question.type", "MX"), ("mailmesh.dns.outcome", "answer")) >= 2);
        Assert.NotEmpty(metrics.Of("mailmesh.dns.lookup.duration"));
    }

    [Fact]
    public async Task Every_service_serves_Prometheus_text_with_its_instruments()
    {
        await using var mesh = await TelemetryMesh.CreateAsync();
        mesh.Destination.RecipientReplies["nobody@dest.test"] = "550 5.1.1 No such user here";
        await mesh.StartAsync();

        var id = await Mail.SendAsync(mesh, Mail.New("scrape", "nobody@" + TelemetryMesh.DestinationDomain));
        await Mail.WaitForStateAsync(mesh, id, RecipientState.Bounced);

        // Prometheus names: dots become underscores, counters end in _total, units are suffixes (_seconds, _bytes).
        await ScrapeUntilAsync(mesh, "ingress", "mailmesh_ingress_messages_accepted_total{", "mailmesh_ingress_accept_duration_seconds_bucket{");
        await ScrapeUntilAsync(mesh, "policy", "mailmesh_policy_decisions_total{");
        await ScrapeUntilAsync(mesh, "dns", "mailmesh_dns_cache_misses_total", "mailmesh_dns_lookup_duration_seconds_bucket{");
        await ScrapeUntilAsync(mesh, "delivery", "mailmesh_delivery_attempts_total{", "mailmesh_delivery_outcome=\"bounced\"");
        await ScrapeUntilAsync(
            mesh,
            "queue",
            "mailmesh_queue_recipients_completed_total{",
            "mailmesh_recipient_state=\"bounced\"",
            "mailmesh_queue_depth{");
    }

    private static async Task ScrapeUntilAsync(DistributedMesh mesh, string service, params string[] expected)
    {
        using var http = mesh.HttpClient(TelemetryMesh.Service(service));
        var deadline = DateTimeOffset.UtcNow + TelemetryMesh.Patience;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        string text;
        do
        {
            using var response = await http.GetAsync("/metrics");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
            text = await response.Content.ReadAsStringAsync();
            if (expected.All(e => text.Contains(e, StringComparison.Ordinal)))
            {
                return;
            }
        }
        while (DateTimeOffset.UtcNow < deadline && await poll.WaitForNextTickAsync());

        var missing = string.Join(", ", expected.Where(e => !text.Contains(e, StringComparison.Ordinal)));
        var mailmesh = string.Join("\n", text.Split('\n').Where(l => l.StartsWith("mailmesh_", StringComparison.Ordinal)).Take(40));
        Assert.Fail($"{service} /metrics never showed {missing}; its mailmesh_ lines:\n{mailmesh}");
    }
}
