using System.Diagnostics;
using System.Diagnostics.Metrics;
using MailMesh.ServiceDefaults;

namespace MailMesh.Delivery;

/// <summary>The Delivery service's instruments (meter "MailMesh.Delivery") and its ActivitySource.</summary>
internal sealed class DeliveryMetrics
{
    public const string MeterName = Telemetry.Prefix + ".Delivery";

    /// <summary>One span per delivery attempt, linked to the trace of the session that accepted the message.</summary>
    public static readonly ActivitySource ActivitySource = new(MeterName);

    private readonly Counter<long> _attempts;
    private readonly Histogram<double> _attemptDuration;
    private readonly UpDownCounter<long> _connectionsActive;
    private readonly Counter<long> _connectionsOpened;
    private readonly Counter<long> _recipients;
    private readonly Counter<long> _leases;
    private readonly Counter<long> _results;
    private readonly Counter<long> _mxLookups;
    private readonly Counter<long> _dkim;
    private readonly Counter<long> _arc;

    public DeliveryMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _attempts = meter.CreateCounter<long>(
            "mailmesh.delivery.attempts", "{attempt}", "Delivery attempts (one message to one domain), by mailmesh.delivery.outcome and server.address.");
        _attemptDuration = meter.CreateHistogram<double>(
            "mailmesh.delivery.attempt.duration", "s", "Duration of a delivery attempt, DNS and SMTP included.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
        _connectionsActive = meter.CreateUpDownCounter<long>(
            "mailmesh.delivery.connections.active", "{connection}", "Open outbound SMTP connections, busy or idle in the pool.");
        _connectionsOpened = meter.CreateCounter<long>(
            "mailmesh.delivery.connections.opened", "{connection}", "Outbound SMTP connections opened.");
        _recipients = meter.CreateCounter<long>(
            "mailmesh.delivery.recipients", "{recipient}", "Recipient results, by mailmesh.delivery.outcome and (for results that are not deliveries) mailmesh.bounce.class.");
        _leases = meter.CreateCounter<long>(
            "mailmesh.delivery.leases", "{attempt}",
            "Work items by what became of their lease: taken, not_taken (re-issued, owned by another attempt, or message gone: nothing sent), lost (re-issued or unconfirmed mid-attempt: stopped before the end of data).");
        _results = meter.CreateCounter<long>(
            "mailmesh.delivery.results", "{result}",
            "Attempt results by how they reached Queue: recorded (the spool's outbox), stale (lease re-issued meanwhile), published (bus fallback while the spool was unreachable), lost (neither).");
        _mxLookups = meter.CreateCounter<long>(
            "mailmesh.delivery.mx_lookups", "{lookup}",
            "MX answers Delivery needed, by mailmesh.dns.cache: hit (its own cache) or miss (asked the Dns service).");
        _dkim = meter.CreateCounter<long>(
            "mailmesh.delivery.dkim", "{attempt}",
            "Attempts by mailmesh.dkim.outcome when DKIM keys are configured: signed, no_key, no_from_domain, unparsable_header, already_signed.");
        _arc = meter.CreateCounter<long>(
            "mailmesh.delivery.arc", "{attempt}",
            "Attempts by mailmesh.arc.outcome when ARC sealing is on: sealed, not_forwarded, chain_failed, chain_unverified, chain_limit, unparsable_header.");
    }

    public void Dkim(string outcome) => _dkim.Add(1, new KeyValuePair<string, object?>("mailmesh.dkim.outcome", outcome));

    public void Arc(string outcome) => _arc.Add(1, new KeyValuePair<string, object?>("mailmesh.arc.outcome", outcome));

    public void MxLookup(string result) => _mxLookups.Add(1, new KeyValuePair<string, object?>("mailmesh.dns.cache", result));

    public void Lease(string outcome) => _leases.Add(1, new KeyValuePair<string, object?>("mailmesh.lease.outcome", outcome));

    public void Result(string outcome) => _results.Add(1, new KeyValuePair<string, object?>("mailmesh.result.outcome", outcome));

    /// <summary>Tag of the attempt's (or recipient's) result: delivered, deferred, bounced or partial.</summary>
    public const string OutcomeTag = "mailmesh.delivery.outcome";

    public void Attempt(string outcome, string? serverAddress, TimeSpan duration)
    {
        // server.address is absent when no server was reached (DNS failure, no route).
        var tags = new TagList { { OutcomeTag, outcome } };
        if (serverAddress is not null)
        {
            tags.Add("server.address", serverAddress);
        }

        _attempts.Add(1, tags);
        _attemptDuration.Record(duration.TotalSeconds, tags);
    }

    public void ConnectionOpened(string serverAddress)
    {
        _connectionsOpened.Add(1, new KeyValuePair<string, object?>("server.address", serverAddress));
        _connectionsActive.Add(1);
    }

    public void ConnectionClosed() => _connectionsActive.Add(-1);

    /// <summary>Tag of a recipient result's bounce class (<see cref="Contracts.BounceClass"/>); absent for deliveries.</summary>
    public const string ClassTag = "mailmesh.bounce.class";

    public void Recipient(string outcome, Contracts.BounceClass? bounceClass = null)
    {
        if (bounceClass is { } cls)
        {
            _recipients.Add(1, new KeyValuePair<string, object?>(OutcomeTag, outcome), new KeyValuePair<string, object?>(ClassTag, ClassName(cls)));
        }
        else
        {
            _recipients.Add(1, new KeyValuePair<string, object?>(OutcomeTag, outcome));
        }
    }

    // Enum.GetName returns the enum's cached name string; ToString would format a new one each time.
    private static string ClassName(Contracts.BounceClass cls) => Enum.GetName(cls) ?? cls.ToString();
}
