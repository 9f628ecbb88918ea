using System.Diagnostics;
using System.Net;
using MailMesh.Contracts;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>
/// Delivers the recipients of one message at one domain and publishes one <see cref="DeliveryAttempted"/> with a
/// result per recipient. SMTP and DNS failures are results (Deferred or Bounced), never exceptions: Queue decides
/// what happens next. Only unexpected errors escape, to be retried by the definition and then re-driven by Queue
/// when the lease expires.
/// </summary>
internal sealed class DeliverMessageConsumer(
    ISpool spool,
    IRequestClient<ResolveMx> resolver,
    SmtpDeliveryAgent agent,
    DeliveryMetrics metrics,
    IOptions<DeliveryOptions> options,
    TimeProvider time,
    ILogger<DeliverMessageConsumer> logger) : IConsumer<DeliverMessage>
{
    public async Task Consume(ConsumeContext<DeliverMessage> context)
    {
        var request = context.Message;
        var cancellationToken = context.CancellationToken;
        var startedAt = time.GetUtcNow();
        var started = time.GetTimestamp();

        if (request.LeaseExpiresAt <= startedAt)
        {
            // The lease ran out while this work item waited (broker backlog, redelivery): Queue has taken the
            // recipients back and may already have handed them to another attempt. Starting now could only deliver
            // twice; its results would be ignored anyway. Nothing is published.
            DeliveryLog.LeaseExpired(logger, request.MessageId, request.Domain, request.LeaseExpiresAt);
            return;
        }

        var message = await spool.GetMessageAsync(request.MessageId, cancellationToken);

        // The attempt's span continues the consume span, which is in the message's own trace (Queue dispatches every
        // attempt under the context stored at acceptance), and also links to the span that accepted the message.
        var links = Telemetry.ParseTraceParent(message?.TraceParent) is { } accepted ? new[] { new ActivityLink(accepted) } : null;
        using var activity = DeliveryMetrics.ActivitySource.StartActivity(
            ActivityKind.Client, parentContext: Activity.Current?.Context ?? default, links: links, name: "smtp.deliver");
        activity?.SetTag("mailmesh.message.id", request.MessageId);
        activity?.SetTag("mailmesh.recipient.domain", request.Domain);
        activity?.SetTag("mailmesh.recipients", request.Recipients.Count);

        AttemptOutcome outcome;
        if (message is null)
        {
            DeliveryLog.MessageMissing(logger, request.MessageId, request.Domain);
            outcome = All(request, DeliveryOutcome.Deferred, 451, "4.3.0", "Message not found in the spool");
        }
        else
        {
            outcome = await DeliverAsync(request, message, cancellationToken);
        }

        var completedAt = time.GetUtcNow();
        await context.Publish(
            new DeliveryAttempted
            {
                MessageId = request.MessageId,
                Domain = request.Domain,
                LeaseId = request.LeaseId,
                Results = outcome.Results,
                RemoteHost = outcome.RemoteHost,
                RemoteAddress = outcome.RemoteAddress,
                StartedAt = startedAt,
                CompletedAt = completedAt,
            },
            cancellationToken);

        var delivered = outcome.Results.Count(r => r.Outcome == DeliveryOutcome.Delivered);
        var deferred = outcome.Results.Count(r => r.Outcome == DeliveryOutcome.Deferred);
        var bounced = outcome.Results.Count(r => r.Outcome == DeliveryOutcome.Bounced);
        foreach (var result in outcome.Results)
        {
            metrics.Recipient(Name(result.Outcome));
        }

        var summary = delivered == outcome.Results.Count ? "delivered"
            : deferred == outcome.Results.Count ? "deferred"
            : bounced == outcome.Results.Count ? "bounced"
            : "partial";
        metrics.Attempt(summary, outcome.RemoteAddress, time.GetElapsedTime(started));
        activity?.SetTag("server.address", outcome.RemoteAddress);
        activity?.SetTag("mailmesh.delivery.outcome", summary);
        if (summary != "delivered")
        {
            activity?.SetStatus(ActivityStatusCode.Error, outcome.Results.FirstOrDefault(r => r.Outcome != DeliveryOutcome.Delivered)?.ReplyText);
        }

        DeliveryLog.Attempted(logger, request.MessageId, request.Domain, delivered, deferred, bounced, outcome.RemoteHost ?? "no connection");
    }

    private async Task<AttemptOutcome> DeliverAsync(DeliverMessage request, StoredMessage message, CancellationToken cancellationToken)
    {
        IReadOnlyList<MxHost> hosts;
        if (TryParseAddressLiteral(request.Domain, out var literal))
        {
            // RFC 5321 §5.1: an address literal is the destination itself; no DNS.
            hosts = [new MxHost { Name = request.Domain, Preference = 0, Addresses = [literal.ToString()] }];
        }
        else
        {
            MxResolved resolved;
            try
            {
                var response = await resolver.GetResponse<MxResolved>(
                    new ResolveMx { Domain = request.Domain }, cancellationToken, RequestTimeout.After(ms: (int)options.Value.ResolveTimeout.TotalMilliseconds));
                resolved = response.Message;
            }
            catch (RequestTimeoutException)
            {
                DeliveryLog.ResolveTimedOut(logger, request.Domain, options.Value.ResolveTimeout);
                return All(request, DeliveryOutcome.Deferred, 451, "4.4.3", $"MX lookup of {request.Domain} timed out");
            }

            switch (resolved.Status)
            {
                case MxStatus.NullMx:
                    // RFC 7505 §4.1: "556 5.1.10 Recipient address has null MX".
                    return All(request, DeliveryOutcome.Bounced, 556, "5.1.10", $"Recipient address has null MX: {request.Domain} accepts no mail");
                case MxStatus.NoSuchDomain:
                    // RFC 3463 §3.2: 5.1.2 bad destination system address.
                    return All(request, DeliveryOutcome.Bounced, 550, "5.1.2", resolved.Error ?? $"Domain {request.Domain} does not exist");
                case MxStatus.TemporaryFailure:
                    // RFC 3463 §3.5: 4.4.3 directory server failure (DNS).
                    return All(request, DeliveryOutcome.Deferred, 451, "4.4.3", resolved.Error ?? $"MX lookup of {request.Domain} failed");
            }

            hosts = resolved.Hosts;
            if (hosts.Count == 0)
            {
                return All(request, DeliveryOutcome.Deferred, 451, "4.4.3", $"No mail exchanger addresses for {request.Domain}");
            }
        }

        return await agent.DeliverAsync(request.Domain, message, request.Recipients, hosts, cancellationToken);
    }

    private static bool TryParseAddressLiteral(string domain, out IPAddress address)
    {
        address = IPAddress.None;
        if (domain.Length < 3 || domain[0] != '[' || domain[^1] != ']')
        {
            return false;
        }

        var inner = domain[1..^1];
        if (inner.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase))
        {
            inner = inner[5..];
        }

        return IPAddress.TryParse(inner, out address!);
    }

    private static AttemptOutcome All(DeliverMessage request, DeliveryOutcome outcome, int code, string enhanced, string text) =>
        new(request.Recipients.Select(r => SmtpDeliveryAgent.Result(r, outcome, code, enhanced, text)).ToList(), null, null);

    private static string Name(DeliveryOutcome outcome) => outcome switch
    {
        DeliveryOutcome.Delivered => "delivered",
        DeliveryOutcome.Deferred => "deferred",
        _ => "bounced",
    };
}

/// <summary>
/// Concurrency is Delivery:ConcurrentDeliveries. SMTP failures are results, not exceptions, so no retry policy
/// applies to them; an unexpected exception gets two immediate retries, then faults, and Queue re-drives the
/// recipients when their lease expires.
/// </summary>
internal sealed class DeliverMessageConsumerDefinition : ConsumerDefinition<DeliverMessageConsumer>
{
    public DeliverMessageConsumerDefinition(IOptions<DeliveryOptions> options)
    {
        ConcurrentMessageLimit = options.Value.ConcurrentDeliveries;
    }

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<DeliverMessageConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        endpointConfigurator.UseMessageRetry(retry => retry.Immediate(2));
    }
}
