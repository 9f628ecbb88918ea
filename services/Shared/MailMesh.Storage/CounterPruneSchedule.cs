namespace MailMesh.Storage;

/// <summary>
/// Decides when a counter increment also deletes expired windows: at most once a minute per store instance
/// (by the caller's clock), by whichever caller gets there first, so the counters table stays small without a
/// background job and the hot path pays for it rarely.
/// </summary>
internal sealed class CounterPruneSchedule
{
    private static readonly long Interval = TimeSpan.FromMinutes(1).Ticks;
    private long _nextTicks;

    public bool IsDue(DateTimeOffset now)
    {
        var next = Interlocked.Read(ref _nextTicks);
        var ticks = now.UtcTicks;
        return ticks >= next && Interlocked.CompareExchange(ref _nextTicks, ticks + Interval, next) == next;
    }
}
