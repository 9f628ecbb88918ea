using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>Records every measurement of MailMesh's meters ("MailMesh.*") made while it listens.</summary>
internal sealed class MetricRecorder : IDisposable
{
    private readonly ConcurrentQueue<Recorded> _measurements = new();
    private readonly MeterListener _listener;

    public MetricRecorder()
    {
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name.StartsWith(ServiceDefaults.Telemetry.Prefix + ".", StringComparison.Ordinal))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>The measurements of one instrument whose tags include all of <paramref name="tags"/>.</summary>
    public IReadOnlyList<Recorded> Of(string instrument, params (string Key, string Value)[] tags) =>
        [.. _measurements.Where(m => m.Instrument == instrument && tags.All(t => m.Tags.TryGetValue(t.Key, out var v) && v == t.Value))];

    /// <summary>The sum of a counter's increments with the given tags.</summary>
    public double Sum(string instrument, params (string Key, string Value)[] tags) => Of(instrument, tags).Sum(m => m.Value);

    /// <summary>Waits until the sum of <paramref name="instrument"/> with the given tags reaches <paramref name="atLeast"/>.</summary>
    public async Task WaitForAsync(string instrument, double atLeast, params (string Key, string Value)[] tags)
    {
        var deadline = DateTimeOffset.UtcNow + TelemetryMesh.Patience;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        do
        {
            if (Sum(instrument, tags) >= atLeast)
            {
                return;
            }
        }
        while (DateTimeOffset.UtcNow < deadline && await poll.WaitForNextTickAsync());

        var seen = string.Join("; ", Of(instrument).Select(m => $"{m.Value} {{{string.Join(", ", m.Tags.Select(t => t.Key + "=" + t.Value))}}}"));
        throw new TimeoutException($"{instrument}{{{string.Join(", ", tags.Select(t => t.Key + "=" + t.Value))}}} never reached {atLeast}; recorded: {seen}");
    }

    private void Record<T>(Instrument instrument, T value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        where T : struct, IConvertible
    {
        var copy = new Dictionary<string, string?>(tags.Length, StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            copy[tag.Key] = tag.Value?.ToString();
        }

        _measurements.Enqueue(new Recorded(instrument.Name, instrument.Unit, Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture), copy));
    }

    public void Dispose() => _listener.Dispose();

    internal sealed record Recorded(string Instrument, string? Unit, double Value, IReadOnlyDictionary<string, string?> Tags);
}
