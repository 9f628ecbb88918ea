namespace MailMesh.LoadTool;

/// <summary>
/// Where in time a paced run's slowest 1 % of messages were due, in windows of 100 ms from the first slot: a p99 made of
/// a few stalls (a garbage collection, a burst of work elsewhere on the machine) looks different from one made of a queue
/// that is always a little long, and the two need different remedies.
/// </summary>
/// <param name="ThresholdMs">The fastest of the slowest 1 % (about the p99).</param>
/// <param name="Slow">The slowest 1 % of the messages (at least one).</param>
/// <param name="Windows">Windows of 100 ms from the first message's slot to the last's.</param>
/// <param name="WindowsWithSlow">Windows in which at least one slow message was due.</param>
/// <param name="WorstWindowStartSeconds">Start of the window with the most slow messages, from the first slot.</param>
/// <param name="WorstWindowSlow">Slow messages due in that window.</param>
/// <param name="Worst">The windows holding the most slow messages (up to <see cref="WorstListed"/>), most first, with the
/// wall-clock time each starts at: the times to look up in the servers' logs (a checkpoint, an autovacuum, a pause).</param>
internal sealed record TailWindows(double ThresholdMs, int Slow, int Windows, int WindowsWithSlow, double WorstWindowStartSeconds, int WorstWindowSlow, IReadOnlyList<(DateTime StartUtc, int Slow)> Worst)
{
    /// <summary>How many of the worst windows <see cref="Worst"/> lists.</summary>
    public const int WorstListed = 5;

    /// <param name="messages">Each message's slot (a timestamp in ticks) and its latency.</param>
    /// <param name="ticksPerSecond">The timestamps' frequency (<see cref="System.Diagnostics.Stopwatch.Frequency"/>).</param>
    /// <param name="clock">One timestamp in the same ticks and the wall-clock time it stands for.</param>
    public static TailWindows? Of(IReadOnlyList<(long Due, double LatencyMs)> messages, long ticksPerSecond, (long Ticks, DateTime Utc) clock = default)
    {
        if (messages.Count == 0)
        {
            return null;
        }

        var slowest = messages.OrderByDescending(m => m.LatencyMs).Take(Math.Max(1, messages.Count / 100)).ToList();
        var first = messages.Min(m => m.Due);
        var last = messages.Max(m => m.Due);
        var window = ticksPerSecond / 10;
        var slowPerWindow = slowest
            .GroupBy(m => (m.Due - first) / window)
            .Select(g => (Window: g.Key, Count: g.Count()))
            .OrderByDescending(w => w.Count)
            .ThenBy(w => w.Window)
            .ToList();
        var worst = slowPerWindow[0];
        return new TailWindows(
            slowest[^1].LatencyMs,
            slowPerWindow.Sum(w => w.Count),
            (int)((last - first) / window) + 1,
            slowPerWindow.Count,
            worst.Window / 10.0,
            worst.Count,
            [.. slowPerWindow.Take(WorstListed).Select(w => (At(first + (w.Window * window)), w.Count))]);

        DateTime At(long ticks) => clock.Utc.AddTicks((long)((ticks - clock.Ticks) * ((double)TimeSpan.TicksPerSecond / ticksPerSecond)));
    }
}
