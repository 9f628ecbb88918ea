using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>
/// One message is one trace: from the span that accepted it (the SMTP transaction, or the HTTP request) through the
/// spool commit, Policy (asked in the Ingress process), the Queue's dispatch, Delivery, Dns and back to the Queue applying the result; and every
/// retry of the message is in that same trace (docs/telemetry.md, "Trace shape").
/// </summary>
public sealed class TraceTests
{
    private const string Ingress = "MailMesh.Ingress";
    private const string Policy = "MailMesh.Policy";
    private const string Queue = "MailMesh.Queue";
    private const string Dns = "MailMesh.Dns";
    private const string Delivery = "MailMesh.Delivery";
    private const string MassTransit = "MassTransit";

    [Fact]
    public async Task A_message_accepted_over_SMTP_is_one_trace_through_every_service()
    {
        using var spans = new SpanCollector();
        await using var mesh = await TelemetryMesh.CreateAsync();
        await mesh.StartAsync();

        var id = await Mail.SendAsync(mesh, Mail.New("one trace", "alice@" + TelemetryMesh.DestinationDomain));
        await Mail.WaitForStateAsync(mesh, id, RecipientState.Delivered);

        // The last span of the message's life: Queue applying Delivery's result.
        var applied = (await spans.WaitForAsync(s => IsFor(s, Queue, "queue.apply_result", id))).Single();
        var transaction = (await spans.WaitForAsync(s => IsFor(s, Ingress, "smtp.transaction", id))).Single();
        var session = (await spans.WaitForAsync(s => s.Source.Name == Ingress && s.OperationName == "smtp.session" && s.TraceId == transaction.TraceId)).Single();

        var traceId = transaction.TraceId;
        Assert.Equal(traceId, applied.TraceId);
        Assert.Equal(session.SpanId, transaction.ParentSpanId);
        var trace = spans.InTrace(traceId);

        // Every service has spans of its own in the trace.
        AssertHas(trace, Ingress, "smtp.session");
        AssertHas(trace, Ingress, "spool.commit");
        AssertHas(trace, Policy, "policy.connection");
        AssertHas(trace, Policy, "policy.recipient");
        AssertHas(trace, Policy, "policy.message");
        AssertHas(trace, Queue, "queue.dispatch");
        AssertHas(trace, Dns, "dns.resolve_mx");
        AssertHas(trace, Delivery, "smtp.deliver");
        AssertHas(trace, Queue, "queue.apply_result");

        // The context crossed the bus in MassTransit's headers: its producer and consumer spans are in the trace too,
        // on both sides of every hop in it (DeliverMessage, ResolveMx on a cache miss; the MessagesReceived announcement is
        // a trace of its own, linked to the transaction). Policy is asked in the Ingress process.
        Assert.Contains(trace, s => s.Source.Name == MassTransit && s.Kind == ActivityKind.Consumer);
        Assert.Contains(trace, s => s.Source.Name == MassTransit && s.Kind is ActivityKind.Producer or ActivityKind.Client);

        // One tree: every span's parent is a recorded span of the trace (only the session is a root).
        AssertOneTree(trace, session);

        // The dispatch that crossed the scheduler's background loop is a child of the span that stored the message.
        var dispatch = Assert.Single(trace, s => s.OperationName == "queue.dispatch");
        Assert.Equal(transaction.SpanId, dispatch.ParentSpanId);
        Assert.Equal(1, dispatch.GetTagItem("mailmesh.delivery.attempt"));

        // Delivery's attempt follows Dns inside it, and links to the span that accepted the message.
        var attempt = Assert.Single(trace, s => s.OperationName == "smtp.deliver");
        Assert.Contains(attempt.Links, l => l.Context.TraceId == traceId && l.Context.SpanId == transaction.SpanId);
        Assert.Equal("delivered", attempt.GetTagItem("mailmesh.delivery.outcome"));
        var resolve = Assert.Single(trace, s => s.OperationName == "dns.resolve_mx");
        Assert.True(IsDescendantOf(resolve, attempt, trace), "the MX lookup belongs to the delivery attempt");
    }

    [Fact]
    public async Task A_retried_delivery_stays_in_the_trace_of_the_message()
    {
        using var spans = new SpanCollector();
        await using var mesh = await TelemetryMesh.CreateAsync();
        mesh.Destination.RecipientReplies["later@dest.test"] = "450 4.2.1 Mailbox busy, try later";
        await mesh.StartAsync();

        var id = await Mail.SendAsync(mesh, Mail.New("retry", "later@" + TelemetryMesh.DestinationDomain));
        await Mail.WaitForAsync(mesh, id, s => s.Recipients[0] is { State: RecipientState.Deferred });
        mesh.Destination.RecipientReplies.Clear();
        var status = await Mail.WaitForStateAsync(mesh, id, RecipientState.Delivered);
        Assert.Equal(2, status.Recipients[0].Attempts);

        var transaction = (await spans.WaitForAsync(s => IsFor(s, Ingress, "smtp.transaction", id))).Single();
        var attempts = await spans.WaitForAsync(s => IsFor(s, Delivery, "smtp.deliver", id), count: 2);
        var results = await spans.WaitForAsync(s => IsFor(s, Queue, "queue.apply_result", id), count: 2);
        var dispatches = spans.ForMessage(Queue, "queue.dispatch", id);

        // Both attempts, their dispatches and their results are in the message's trace: the retry is parented by the
        // context stored with the message, like the first attempt (no new trace per attempt).
        Assert.All(attempts.Concat(results).Concat(dispatches), s => Assert.Equal(transaction.TraceId, s.TraceId));
        Assert.Equal([1, 2], dispatches.Select(d => (int)d.GetTagItem("mailmesh.delivery.attempt")!).Order());
        Assert.All(dispatches, d => Assert.Equal(transaction.SpanId, d.ParentSpanId));
        Assert.Equal(["deferred", "delivered"], attempts.OrderBy(a => a.StartTimeUtc).Select(a => (string?)a.GetTagItem("mailmesh.delivery.outcome")));
        Assert.All(attempts, a => Assert.Contains(a.Links, l => l.Context.SpanId == transaction.SpanId));

        // The two attempts are separate subtrees: the retry is not a child of the first attempt.
        var trace = spans.InTrace(transaction.TraceId);
        var ordered = attempts.OrderBy(a => a.StartTimeUtc).ToList();
        Assert.False(IsDescendantOf(ordered[1], ordered[0], trace));
    }

    [Fact]
    public async Task A_bounce_DSN_is_delivered_in_the_trace_of_the_message_it_reports_on()
    {
        using var spans = new SpanCollector();
        await using var mesh = await TelemetryMesh.CreateAsync();
        mesh.Destination.RecipientReplies["nobody@dest.test"] = "550 5.1.1 No such user here";
        await mesh.StartAsync();

        var id = await Mail.SendAsync(mesh, Mail.New("bounce", "nobody@" + TelemetryMesh.DestinationDomain));
        await mesh.SenderMailbox.WaitForMessagesAsync(1, TelemetryMesh.Patience);

        var transaction = (await spans.WaitForAsync(s => IsFor(s, Ingress, "smtp.transaction", id))).Single();
        var bounce = (await spans.WaitForAsync(s => IsFor(s, Delivery, "smtp.deliver", id))).Single();
        Assert.Equal("bounced", bounce.GetTagItem("mailmesh.delivery.outcome"));

        // The DSN is a message of its own (another spool id) stored with the context of the span that wrote it.
        var dsn = (await spans.WaitForAsync(s =>
            s.Source.Name == Delivery && s.OperationName == "smtp.deliver"
            && Equals(s.GetTagItem("mailmesh.recipient.domain"), TelemetryMesh.SenderDomain))).Single();
        Assert.Equal(transaction.TraceId, bounce.TraceId);
        Assert.Equal(transaction.TraceId, dsn.TraceId);
        Assert.Equal("delivered", dsn.GetTagItem("mailmesh.delivery.outcome"));
    }

    [Fact]
    public async Task A_message_submitted_over_HTTP_continues_the_callers_trace()
    {
        using var spans = new SpanCollector();
        await using var mesh = await TelemetryMesh.CreateAsync();
        await mesh.StartAsync();

        // W3C Trace Context §3.2: the caller's traceparent; its trace id must be the message's.
        var callerTrace = ActivityTraceId.CreateRandom();
        var callerSpan = ActivitySpanId.CreateRandom();
        using var http = mesh.HttpClient(MeshService.Ingress);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/messages")
        {
            Content = JsonContent.Create(new
            {
                from = "sender@" + TelemetryMesh.SenderDomain,
                to = new[] { "carol@" + TelemetryMesh.DestinationDomain },
                subject = "over HTTP",
                text = "telemetry",
            }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", TelemetryMesh.ApiKey);
        request.Headers.Add("traceparent", $"00-{callerTrace}-{callerSpan}-01");
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        await Mail.WaitForStateAsync(mesh, id, RecipientState.Delivered);

        var submission = (await spans.WaitForAsync(s => IsFor(s, Ingress, "http.submission", id))).Single();
        await spans.WaitForAsync(s => IsFor(s, Queue, "queue.apply_result", id));
        Assert.Equal(callerTrace, submission.TraceId);

        var trace = spans.InTrace(callerTrace);
        AssertHas(trace, Ingress, "spool.commit");
        AssertHas(trace, Policy, "policy.recipient");
        AssertHas(trace, Policy, "policy.message");
        AssertHas(trace, Queue, "queue.dispatch");
        AssertHas(trace, Dns, "dns.resolve_mx");
        AssertHas(trace, Delivery, "smtp.deliver");
        AssertHas(trace, Queue, "queue.apply_result");
        var dispatch = Assert.Single(trace, s => s.OperationName == "queue.dispatch");
        Assert.Equal(submission.SpanId, dispatch.ParentSpanId);
    }

    private static bool IsFor(Activity span, string source, string name, Guid messageId) =>
        span.Source.Name == source && span.OperationName == name
        && string.Equals(span.GetTagItem("mailmesh.message.id")?.ToString(), messageId.ToString(), StringComparison.OrdinalIgnoreCase);

    private static void AssertHas(IReadOnlyList<Activity> trace, string source, string name) =>
        Assert.True(
            trace.Any(s => s.Source.Name == source && s.OperationName == name),
            $"no {source}/{name} span in the trace; it has: {SpanCollector.Describe(trace)}");

    private static void AssertOneTree(IReadOnlyList<Activity> trace, Activity root)
    {
        var ids = trace.Select(s => s.SpanId).ToHashSet();
        var orphans = trace.Where(s => s != root && !ids.Contains(s.ParentSpanId)).ToList();
        Assert.True(orphans.Count == 0, $"spans whose parent is not in the trace: {SpanCollector.Describe(orphans)}");
    }

    private static bool IsDescendantOf(Activity span, Activity ancestor, IReadOnlyList<Activity> trace)
    {
        var byId = trace.ToDictionary(s => s.SpanId);
        var current = span;
        while (byId.TryGetValue(current.ParentSpanId, out var parent))
        {
            if (parent.SpanId == ancestor.SpanId)
            {
                return true;
            }

            current = parent;
        }

        return false;
    }
}
