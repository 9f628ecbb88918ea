using System.Collections.Concurrent;
using System.Diagnostics;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>
/// Records every finished span of MailMesh's ActivitySources ("MailMesh.*") and MassTransit's, from every host in the
/// process, as an OpenTelemetry exporter would receive them.
/// </summary>
internal sealed class SpanCollector : IDisposable
{
    private readonly ConcurrentQueue<Activity> _spans = new();
    private readonly ActivityListener _listener;

    public SpanCollector()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name.StartsWith(ServiceDefaults.Telemetry.Prefix + ".", StringComparison.Ordinal) || source.Name == "MassTransit",
            Sample = static (ref _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _spans.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public IReadOnlyList<Activity> Spans => [.. _spans];

    public IReadOnlyList<Activity> InTrace(ActivityTraceId traceId) => [.. _spans.Where(s => s.TraceId == traceId)];

    /// <summary>The spans of one source, optionally of one operation name.</summary>
    public IReadOnlyList<Activity> From(string source, string? name = null) =>
        [.. _spans.Where(s => s.Source.Name == source && (name is null || s.OperationName == name))];

    /// <summary>The span of <paramref name="source"/>/<paramref name="name"/> tagged with a message id.</summary>
    public IReadOnlyList<Activity> ForMessage(string source, string name, Guid messageId) =>
        [.. From(source, name).Where(s => Equals(s.GetTagItem("mailmesh.message.id")?.ToString(), messageId.ToString()))];

    /// <summary>Waits until spans matching <paramref name="condition"/> number at least <paramref name="count"/>.</summary>
    public async Task<IReadOnlyList<Activity>> WaitForAsync(Func<Activity, bool> condition, int count = 1)
    {
        var deadline = DateTimeOffset.UtcNow + TelemetryMesh.Patience;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        do
        {
            var found = _spans.Where(condition).ToList();
            if (found.Count >= count)
            {
                return found;
            }
        }
        while (DateTimeOffset.UtcNow < deadline && await poll.WaitForNextTickAsync());

        throw new TimeoutException($"expected {count} matching span(s); recorded: {Describe(_spans)}");
    }

    public static string Describe(IEnumerable<Activity> spans) =>
        string.Join("; ", spans.Select(s => $"{s.Source.Name}/{s.OperationName} [{s.DisplayName}] trace={s.TraceId} parent={s.ParentSpanId}"));

    public void Dispose() => _listener.Dispose();
}
