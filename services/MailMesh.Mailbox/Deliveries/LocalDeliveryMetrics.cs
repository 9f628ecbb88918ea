using System.Diagnostics;
using System.Diagnostics.Metrics;
using MailMesh.Contracts;
using MailMesh.ServiceDefaults;

namespace MailMesh.Mailbox.Deliveries;

/// <summary>Local delivery's instruments (meter "MailMesh.Mailbox") and its ActivitySource.</summary>
internal sealed class LocalDeliveryMetrics
{
    public const string MeterName = Telemetry.Prefix + ".Mailbox";

    public static readonly ActivitySource ActivitySource = new(MeterName);

    private readonly Counter<long> _recipients;
    private readonly Counter<long> _leases;
    private readonly Counter<long> _results;
    private readonly Histogram<double> _duration;

    public LocalDeliveryMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _recipients = meter.CreateCounter<long>(
            "mailmesh.mailbox.delivery.recipients", "{recipient}", "Local delivery results per recipient, by mailmesh.delivery.outcome.");
        _leases = meter.CreateCounter<long>(
            "mailmesh.mailbox.delivery.leases", "{attempt}", "Local delivery work items whose lease was not taken (re-issued, or held by another consumer).");
        _results = meter.CreateCounter<long>(
            "mailmesh.mailbox.delivery.results", "{attempt}", "What became of local delivery results: recorded, stale (lease re-issued), published (bus fallback), lost.");
        _duration = meter.CreateHistogram<double>(
            "mailmesh.mailbox.delivery.duration", "s", "Duration of a local delivery attempt, lease take, store and result included.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30] });
    }

    public void Recipient(DeliveryOutcome outcome) =>
        _recipients.Add(1, new KeyValuePair<string, object?>("mailmesh.delivery.outcome", outcome.ToString().ToLowerInvariant()));

    public void Lease(string outcome) => _leases.Add(1, new KeyValuePair<string, object?>("mailmesh.lease.outcome", outcome));

    public void Result(string outcome) => _results.Add(1, new KeyValuePair<string, object?>("mailmesh.result.outcome", outcome));

    public void Attempt(TimeSpan duration) => _duration.Record(duration.TotalSeconds);
}
