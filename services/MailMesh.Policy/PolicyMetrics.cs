using System.Diagnostics;
using System.Diagnostics.Metrics;
using MailMesh.ServiceDefaults;

namespace MailMesh.Policy;

/// <summary>The Policy service's instruments (meter "MailMesh.Policy"); every one is listed in docs/telemetry.md.</summary>
internal sealed class PolicyMetrics
{
    public const string MeterName = Telemetry.Prefix + ".Policy";

    private readonly Counter<long> _decisions;
    private readonly Counter<long> _spfEvaluations;
    private readonly Counter<long> _scans;
    private readonly Histogram<double> _scanDuration;
    private readonly Counter<long> _dnsblLookups;

    public PolicyMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _decisions = meter.CreateCounter<long>("mailmesh.policy.decisions", "{decision}",
            "Policy decisions by check (connection, recipient, message), decision (accept, reject, tempfail) and reason.");
        _spfEvaluations = meter.CreateCounter<long>("mailmesh.policy.spf.evaluations", "{evaluation}",
            "SPF (RFC 7208) evaluations that reached DNS (cache hits not counted), by result.");
        _scans = meter.CreateCounter<long>("mailmesh.policy.scans", "{scan}",
            "Content scans by scanner (rspamd, clamd) and result (pass, tag, junk, tempfail, reject, unavailable, skipped).");
        _scanDuration = meter.CreateHistogram<double>("mailmesh.policy.scan.duration", "s",
            "Time of one content scan, by scanner: the per-message cost of rspamd and clamd.");
        _dnsblLookups = meter.CreateCounter<long>("mailmesh.policy.dnsbl.lookups", "{lookup}",
            "DNSBL/DNSWL queries that reached DNS (cache hits not counted), by zone and result (listed, not_listed, error).");
    }

    /// <summary>One SPF evaluation that reached DNS, by its RFC 7208 §2.6 result keyword.</summary>
    public void SpfEvaluated(string result) =>
        _spfEvaluations.Add(1, new KeyValuePair<string, object?>("mailmesh.spf.result", result));

    /// <summary>One content scan and how long it took.</summary>
    public void Scanned(string scanner, string result, TimeSpan duration)
    {
        _scans.Add(1, new KeyValuePair<string, object?>("mailmesh.scan.scanner", scanner), new KeyValuePair<string, object?>("mailmesh.scan.result", result));
        _scanDuration.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("mailmesh.scan.scanner", scanner));
    }

    /// <summary>One DNSBL/DNSWL query that reached DNS.</summary>
    public void DnsblLookup(string zone, string result) =>
        _dnsblLookups.Add(1, new KeyValuePair<string, object?>("mailmesh.dnsbl.zone", zone), new KeyValuePair<string, object?>("mailmesh.dnsbl.result", result));

    public void Decided(string check, Verdict verdict)
    {
        var decision = verdict.Decision.Accepted ? "accept" : verdict.Decision.ReplyCode >= 500 ? "reject" : "tempfail";
        _decisions.Add(1, new TagList
        {
            { "mailmesh.policy.check", check },
            { "mailmesh.policy.decision", decision },
            { "mailmesh.policy.reason", verdict.Reason },
        });
    }
}

/// <summary>The Policy service's ActivitySource.</summary>
internal static class PolicyTelemetry
{
    public static readonly ActivitySource Source = new(Telemetry.Prefix + ".Policy");
}
