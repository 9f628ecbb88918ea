using System.Diagnostics;
using System.Diagnostics.Metrics;
using MailMesh.Storage;

namespace MailMesh.Ingress;

/// <summary>Ingress instruments (listed in docs/telemetry.md). Tag names follow OpenTelemetry conventions.</summary>
internal sealed class IngressMetrics
{
    public const string MeterName = "MailMesh.Ingress";

    private readonly Meter _meter;
    private readonly UpDownCounter<long> _activeSessions;
    private readonly Counter<long> _sessions;
    private readonly Counter<long> _accepted;
    private readonly Counter<long> _rejected;
    private readonly Histogram<long> _size;
    private readonly Histogram<double> _acceptDuration;
    private readonly Counter<long> _refusedConnections;
    private readonly Counter<long> _improperPipelining;
    private readonly Counter<long> _authentications;
    private readonly Counter<long> _tlsHandshakes;
    private readonly Counter<long> _bufferBudgetRefusals;

    public IngressMetrics(IMeterFactory meterFactory)
    {
        var meter = _meter = meterFactory.Create(MeterName);
        _activeSessions = meter.CreateUpDownCounter<long>("mailmesh.smtp.sessions.active", "{session}", "SMTP sessions open now.");
        _sessions = meter.CreateCounter<long>("mailmesh.smtp.sessions", "{session}", "SMTP sessions opened.");
        _accepted = meter.CreateCounter<long>("mailmesh.ingress.messages.accepted", "{message}", "Messages committed to the spool and answered 250.");
        _rejected = meter.CreateCounter<long>("mailmesh.ingress.messages.rejected", "{message}", "Messages refused at the end of DATA, by error.type.");
        _size = meter.CreateHistogram<long>("mailmesh.ingress.message.size", "By", "Size of accepted messages as stored.");
        _acceptDuration = meter.CreateHistogram<double>(
            "mailmesh.ingress.accept.duration",
            "s",
            "Time from the end of DATA to the 250 reply (checks and spool commit).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        _refusedConnections = meter.CreateCounter<long>("mailmesh.smtp.connections.refused", "{connection}", "Connections refused before the greeting by a connection limit, by error.type.");
        _improperPipelining = meter.CreateCounter<long>("mailmesh.smtp.improper_pipelining", "{event}", "Clients that sent input where RFC 2920 forbids it (pregreet, data, starttls).");
        _authentications = meter.CreateCounter<long>("mailmesh.smtp.auth.attempts", "{attempt}", "AUTH exchanges, by mailmesh.auth.result (success, failure, locked_out).");
        _bufferBudgetRefusals = meter.CreateCounter<long>(
            "mailmesh.ingress.buffer_budget.refusals",
            "{refusal}",
            "Messages refused (SMTP 452 4.3.1, HTTP 503) because Ingress:MaxBufferedBytes was used up, by mailmesh.stage (mail, data, bdat, content, http).");
        _tlsHandshakes = meter.CreateCounter<long>("mailmesh.smtp.tls.handshakes", "{handshake}", "TLS handshakes (STARTTLS and implicit TLS); failed ones carry error.type.");
    }

    /// <summary>Registers <c>mailmesh.smtp.buffered_bytes</c>, read from <paramref name="inUse"/> (the MessageBufferBudget).</summary>
    public void ObserveBufferedBytes(Func<long> inUse) =>
        _meter.CreateObservableUpDownCounter(
            "mailmesh.smtp.buffered_bytes",
            inUse,
            "By",
            "Message bytes held in memory while they arrive (SMTP DATA/BDAT and HTTP bodies), bounded by Ingress:MaxBufferedBytes.");

    public void BufferBudgetExhausted(string stage) => _bufferBudgetRefusals.Add(1, new TagList { { "mailmesh.stage", stage } });

    public void ConnectionRefused(string limit) => _refusedConnections.Add(1, new TagList { { "error.type", limit } });

    public void ImproperPipelining(string where) => _improperPipelining.Add(1, new TagList { { "mailmesh.pipelining.stage", where } });

    public void Authentication(string result) => _authentications.Add(1, new TagList { { "mailmesh.auth.result", result } });

    public void TlsHandshake(bool failed) => _tlsHandshakes.Add(1, failed ? new TagList { { "error.type", "handshake_failed" } } : default);

    public void SessionStarted()
    {
        _sessions.Add(1);
        _activeSessions.Add(1);
    }

    public void SessionEnded() => _activeSessions.Add(-1);

    public void Accepted(MessageOrigin origin, long size, TimeSpan duration)
    {
        var tags = new TagList { { "mailmesh.origin", OriginTag(origin) } };
        _accepted.Add(1, tags);
        _size.Record(size, tags);
        _acceptDuration.Record(duration.TotalSeconds, tags);
    }

    public void Rejected(MessageOrigin origin, string errorType) =>
        _rejected.Add(1, new TagList { { "mailmesh.origin", OriginTag(origin) }, { "error.type", errorType } });

    private static string OriginTag(MessageOrigin origin) => origin switch
    {
        MessageOrigin.Smtp => "smtp",
        MessageOrigin.Http => "http",
        _ => "other",
    };
}
