using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MailMesh.Contracts;
using MailMesh.Queue.Webhooks;
using MailMesh.ServiceDefaults;
using MailMesh.Testing.Https;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Tests.Webhooks;

public sealed class MessageEventWebhookTests : IAsyncLifetime
{
    private const string Secret = "whsec-correct-horse-battery-staple";

    private WebhookReceiver _receiver = null!;

    public async Task InitializeAsync() => _receiver = await WebhookReceiver.StartAsync();

    public async Task DisposeAsync() => await _receiver.DisposeAsync();

    [Fact]
    public async Task Posts_the_event_as_camelCase_json_signed_with_the_secret()
    {
        await using var host = await WebhookTestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Queue:Webhooks:Endpoints:0:Url"] = _receiver.Url("/hooks/mail").ToString(),
            ["Queue:Webhooks:Endpoints:0:Secret"] = Secret,
        });
        var sent = Event(MessageEventType.Bounced) with
        {
            Recipient = "nobody@dest.example",
            ReplyCode = 550,
            EnhancedCode = "5.1.1",
            Text = "No such user",
            RemoteHost = "mx1.dest.example",
            Class = BounceClass.InvalidRecipient,
        };

        await host.Harness.Bus.Publish(sent);
        var request = await _receiver.NextAsync();

        Assert.Equal("/hooks/mail", request.Path);
        Assert.StartsWith("application/json", request.Headers["Content-Type"], StringComparison.Ordinal);
        using var json = JsonDocument.Parse(request.Body);
        var root = json.RootElement;
        Assert.Equal(sent.MessageId, root.GetProperty("messageId").GetGuid());
        Assert.Equal("Bounced", root.GetProperty("type").GetString());
        Assert.Equal("nobody@dest.example", root.GetProperty("recipient").GetString());
        Assert.Equal(550, root.GetProperty("replyCode").GetInt32());
        Assert.Equal("5.1.1", root.GetProperty("enhancedCode").GetString());
        Assert.Equal("No such user", root.GetProperty("text").GetString());
        Assert.Equal("mx1.dest.example", root.GetProperty("remoteHost").GetString());
        Assert.Equal("InvalidRecipient", root.GetProperty("class").GetString());
        Assert.Equal(sent.Timestamp, root.GetProperty("timestamp").GetDateTimeOffset());
        Assert.Equal("Bounced", request.Headers[MessageEventWebhookConsumer.EventTypeHeader]);
        Assert.True(Guid.TryParse(request.Headers[MessageEventWebhookConsumer.EventIdHeader], out _));

        // What a receiver does: HMAC-SHA256 over "{timestamp}.{raw body}" with the shared secret.
        var timestamp = request.Headers[MessageEventWebhookConsumer.TimestampHeader];
        Assert.True(long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out _));
        byte[] signed = [.. Encoding.ASCII.GetBytes(timestamp + "."), .. request.Body];
        var expected = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), signed));
        Assert.Equal(expected, request.Headers[MessageEventWebhookConsumer.SignatureHeader]);
        Assert.NotEqual(
            expected,
            "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData("wrong-secret"u8.ToArray(), signed)));
    }

    [Fact]
    public async Task Without_a_secret_no_signature_is_sent()
    {
        await using var host = await WebhookTestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Queue:Webhooks:Endpoints:0:Url"] = _receiver.Url("/plain").ToString(),
        });

        await host.Harness.Bus.Publish(Event(MessageEventType.Delivered));
        var request = await _receiver.NextAsync();

        Assert.False(request.Headers.ContainsKey(MessageEventWebhookConsumer.SignatureHeader));
        Assert.True(request.Headers.ContainsKey(MessageEventWebhookConsumer.TimestampHeader));
        Assert.DoesNotContain("\"recipient\"", Encoding.UTF8.GetString(request.Body), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Each_endpoint_gets_only_the_event_types_it_asked_for()
    {
        await using var host = await WebhookTestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Queue:Webhooks:Endpoints:0:Url"] = _receiver.Url("/failures").ToString(),
            ["Queue:Webhooks:Endpoints:0:Events"] = "Bounced, expired",
            ["Queue:Webhooks:Endpoints:1:Url"] = _receiver.Url("/everything").ToString(),
        });
        var delivered = Event(MessageEventType.Delivered);
        var bounced = Event(MessageEventType.Bounced);

        await host.Harness.Bus.Publish(delivered);
        await host.Harness.Bus.Publish(bounced);
        await host.ConsumedAsync(delivered.MessageId, MessageEventType.Delivered);
        await host.ConsumedAsync(bounced.MessageId, MessageEventType.Bounced);

        var received = _receiver.All.Select(r => (r.Path, Type: JsonDocument.Parse(r.Body).RootElement.GetProperty("type").GetString())).ToList();
        Assert.Equal(3, received.Count);
        Assert.Equal([("/failures", "Bounced")], received.Where(r => r.Path == "/failures"));
        Assert.Equal(["Bounced", "Delivered"], received.Where(r => r.Path == "/everything").Select(r => r.Type).Order());
    }

    [Fact]
    public async Task A_server_error_is_retried_with_the_same_event_id_until_accepted()
    {
        _receiver.Script.Enqueue(500);
        _receiver.Script.Enqueue(503);
        await using var host = await WebhookTestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Queue:Webhooks:Endpoints:0:Url"] = _receiver.Url("/flaky").ToString(),
        });
        var sent = Event(MessageEventType.Deferred);

        await host.Harness.Bus.Publish(sent);
        var first = await _receiver.NextAsync();
        var second = await _receiver.NextAsync();
        var third = await _receiver.NextAsync();

        await host.ConsumedAsync(sent.MessageId, MessageEventType.Deferred);
        Assert.Equal(first.Body, third.Body);
        Assert.Equal(first.Headers[MessageEventWebhookConsumer.EventIdHeader], second.Headers[MessageEventWebhookConsumer.EventIdHeader]);
        Assert.Equal(first.Headers[MessageEventWebhookConsumer.EventIdHeader], third.Headers[MessageEventWebhookConsumer.EventIdHeader]);
        Assert.Empty(_receiver.Script);
    }

    [Fact]
    public async Task A_batch_of_events_is_posted_once_per_event_and_endpoint_and_only_what_failed_is_retried()
    {
        // Queue publishes the events of one batch of results as one MessageEvents (issue 8); receivers still get one POST
        // per event. One POST fails: that event is retried on its own, for that endpoint only, under the same id; nothing
        // that was taken is sent again. The failure is scripted for /bounces, which gets one event: the batch's POSTs run
        // in parallel, and a failure on /all would make the others to /all skipped or not depending on which came first.
        _receiver.ScriptFor["/bounces"] = new([500]);
        await using var host = await WebhookTestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Queue:Webhooks:Endpoints:0:Url"] = _receiver.Url("/all").ToString(),
            ["Queue:Webhooks:Endpoints:1:Url"] = _receiver.Url("/bounces").ToString(),
            ["Queue:Webhooks:Endpoints:1:Events"] = "Bounced",
        });
        MessageEvent[] events = [Event(MessageEventType.Delivered), Event(MessageEventType.Bounced), Event(MessageEventType.Expired)];
        var batch = new MessageEvents { Events = [.. events.Select(e => e with { EventId = Guid.NewGuid() })] };

        await host.Harness.Bus.Publish(batch);
        await host.Probe.WaitConsumedAsync<MessageEvents>(_ => true);
        await host.Probe.WaitConsumedAsync<WebhookRetry>(_ => true);

        Assert.Null(Assert.Single(host.Probe.Consumed<MessageEvents>()).Fault);
        var retry = Assert.Single(host.Probe.Consumed<WebhookRetry>());
        Assert.Null(retry.Fault);
        Assert.Single(retry.Message.Targets);
        var received = _receiver.All.Select(r => (r.Path, Id: r.Headers[MessageEventWebhookConsumer.EventIdHeader], Body: JsonDocument.Parse(r.Body).RootElement)).ToList();
        Assert.Equal(5, received.Count); // 3 to /all and 1 to /bounces, plus the one that failed
        Assert.Equal(4, received.Select(r => (r.Path, r.Id)).Distinct().Count());
        foreach (var e in batch.Events)
        {
            var posts = received.Where(r => r.Id == e.EventId.ToString()).ToList();
            Assert.Equal(e.Type == MessageEventType.Bounced ? ["/all", "/bounces"] : ["/all"], posts.Select(p => p.Path).Distinct().Order());
            Assert.All(posts, p => Assert.Equal(e.MessageId, p.Body.GetProperty("messageId").GetGuid()));
            Assert.All(posts, p => Assert.Equal(e.EventId, p.Body.GetProperty("eventId").GetGuid()));
        }

        Assert.Empty(_receiver.ScriptFor["/bounces"]);
    }

    [Fact]
    public async Task An_endpoint_that_fails_in_a_batch_is_not_tried_again_for_the_rest_of_it()
    {
        // A receiver that is down costs one round of POSTs per batch, not one per event: after its first failure, the
        // batch's other events for it go straight to their own retries (here: three tries each, then faulted).
        for (var i = 0; i < 1000; i++)
        {
            _receiver.Script.Enqueue(503);
        }

        await using var host = await WebhookTestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Queue:Webhooks:Endpoints:0:Url"] = _receiver.Url("/down").ToString(),
        });
        const int Events = 40;
        var batch = new MessageEvents { Events = [.. Enumerable.Range(0, Events).Select(_ => Event(MessageEventType.Delivered) with { EventId = Guid.NewGuid() })] };

        await host.Harness.Bus.Publish(batch);
        await host.Probe.WaitConsumedAsync<MessageEvents>(_ => true);
        await host.Probe.WaitConsumedAsync<WebhookRetry>(_ => true, count: Events);

        // Each event's retry made 3 POSTs; the batch itself at most one round of EventsAtOnce (40 without the rule).
        var tries = 1 + WebhookTestHost.RetryIntervals.Length;
        Assert.All(host.Probe.Consumed<WebhookRetry>(), r => Assert.NotNull(r.Fault));
        Assert.InRange(_receiver.All.Count - (Events * tries), 1, MessageEventWebhookConsumer.EventsAtOnce);
    }

    [Fact]
    public async Task A_receiver_that_does_not_answer_in_time_is_retried()
    {
        _receiver.Script.Enqueue(WebhookReceiver.Hang);
        await using var host = await WebhookTestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Queue:Webhooks:Endpoints:0:Url"] = _receiver.Url("/slow").ToString(),
            ["Queue:Webhooks:Timeout"] = "00:00:00.200",
        });
        var sent = Event(MessageEventType.Expired);

        await host.Harness.Bus.Publish(sent);
        var first = await _receiver.NextAsync();
        var second = await _receiver.NextAsync();

        // The first request never gets an answer, so only the 200 ms timeout can have ended it.
        await host.ConsumedAsync(sent.MessageId, MessageEventType.Expired);
        Assert.Equal(first.Headers[MessageEventWebhookConsumer.EventIdHeader], second.Headers[MessageEventWebhookConsumer.EventIdHeader]);
    }

    [Theory]
    [InlineData("x")]
    [InlineData("/relative/path")]
    [InlineData("ftp://hooks.example/")]
    public void A_url_that_is_not_absolute_http_fails_validation_naming_the_key(string url)
    {
        using var services = WebhookTestHost.BuildServices(new Dictionary<string, string?>
        {
            ["Queue:Webhooks:Endpoints:0:Url"] = "https://hooks.example/ok",
            ["Queue:Webhooks:Endpoints:1:Url"] = url,
        });

        var ex = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<WebhookOptions>>().Value);
        Assert.Equal([$"Queue:Webhooks:Endpoints:1:Url: '{url}' is not an absolute http(s) URL"], ex.Failures);
    }

    [Fact]
    public void Unknown_event_names_and_a_non_positive_timeout_fail_validation_naming_the_key()
    {
        using var services = WebhookTestHost.BuildServices(new Dictionary<string, string?>
        {
            ["Queue:Webhooks:Endpoints:0:Url"] = "https://hooks.example/ok",
            ["Queue:Webhooks:Endpoints:0:Events"] = "Delivered,Opened",
            ["Queue:Webhooks:Timeout"] = "00:00:00",
        });

        var ex = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<WebhookOptions>>().Value);
        Assert.Contains(ex.Failures, f => f.StartsWith("Queue:Webhooks:Endpoints:0:Events: 'Opened' is not a message event type", StringComparison.Ordinal));
        Assert.Contains("Queue:Webhooks:Timeout: must be positive", ex.Failures);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_consumer_is_registered_with_or_without_configured_endpoints(bool configured)
    {
        // Endpoints may be made through the admin API at any time, so the consumer is always there.
        var builder = Host.CreateApplicationBuilder();
        if (configured)
        {
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Queue:Webhooks:Endpoints:0:Url"] = "https://hooks.example/mail",
            });
        }

        builder.AddWebhooks();
        builder.AddWebhooks();
        builder.AddMailMeshBus(BusTransport.InMemory);

        Assert.Single(builder.Services, d => d.ServiceType == typeof(MessageEventWebhookConsumer));
    }

    [Fact]
    public void Turned_off_there_is_no_consumer_so_no_event_is_delivered_to_a_webhooks_queue()
    {
        // Issue 8: in the distributed mode the consumer costs one more RabbitMQ delivery per event.
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Queue:Webhooks:Enabled"] = "false" });

        builder.AddWebhooks();
        builder.AddMailMeshBus(BusTransport.InMemory);

        Assert.DoesNotContain(builder.Services, d => d.ServiceType == typeof(MessageEventWebhookConsumer));
    }

    [Theory]
    [InlineData("Queue:Webhooks:Enabled", "false", "Queue:Webhooks:Enabled: is false but Queue:Webhooks:Endpoints lists 1 endpoint(s)")]
    [InlineData("Queue:Webhooks:RefreshInterval", "00:00:00", "Queue:Webhooks:RefreshInterval: must be between")]
    [InlineData("Queue:Webhooks:HistoryRetention", "00:00:10", "Queue:Webhooks:HistoryRetention: must be at least 00:01:00")]
    public void Bad_stored_endpoint_settings_fail_validation_naming_the_key(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?> { [key] = value };
        if (key.EndsWith(":Enabled", StringComparison.Ordinal))
        {
            settings["Queue:Webhooks:Endpoints:0:Url"] = "https://hooks.example/mail";
        }

        using var services = WebhookTestHost.BuildServices(settings);

        var ex = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<WebhookOptions>>().Value);
        Assert.StartsWith(expected, Assert.Single(ex.Failures), StringComparison.Ordinal);
    }

    private static MessageEvent Event(MessageEventType type) => new()
    {
        MessageId = Guid.NewGuid(),
        Type = type,
        Timestamp = new DateTimeOffset(2025, 3, 1, 12, 0, 0, TimeSpan.Zero),
    };
}
