namespace MailMesh.LoadTool.Tests;

/// <summary>Where a paced run's slowest 1 % fell: one stall, or spread over the run.</summary>
public sealed class TailWindowsTests
{
    private const long TicksPerSecond = 1_000_000;

    [Fact]
    public void A_stall_puts_the_slowest_percent_in_one_window()
    {
        // 1,000 messages over 10 s at 5 ms; the ten due between 4.20 s and 4.29 s took 80 ms.
        var messages = Enumerable.Range(0, 1000)
            .Select(i => (Due: i * TicksPerSecond / 100, LatencyMs: i is >= 420 and < 430 ? 80.0 : 5.0))
            .ToList();

        var tail = TailWindows.Of(messages, TicksPerSecond)!;

        Assert.Equal(80.0, tail.ThresholdMs);
        Assert.Equal(10, tail.Slow);
        Assert.Equal(100, tail.Windows);
        Assert.Equal(1, tail.WindowsWithSlow);
        Assert.Equal(4.2, tail.WorstWindowStartSeconds, 3);
        Assert.Equal(10, tail.WorstWindowSlow);
    }

    [Fact]
    public void The_worst_windows_are_named_by_wall_clock_time()
    {
        // 1,300 messages from 12:00:00 UTC (the slowest 1 % is 13): 10 slow ones at 4.2 s, 3 at 7.0 s.
        var messages = Enumerable.Range(0, 1300)
            .Select(i => (Due: 5_000_000 + (i * TicksPerSecond / 100), LatencyMs: i is >= 420 and < 430 ? 80.0 : i is >= 700 and < 703 ? 70.0 : 5.0))
            .ToList();
        var noon = new DateTime(2026, 12, 5, 12, 0, 0, DateTimeKind.Utc);

        var tail = TailWindows.Of(messages, TicksPerSecond, (5_000_000, noon))!;

        Assert.Equal([(noon.AddSeconds(4.2), 10), (noon.AddSeconds(7.0), 3)], tail.Worst);
    }

    [Fact]
    public void A_queue_spreads_it_over_the_run()
    {
        // Every hundredth message was slow: ten windows each hold one.
        var messages = Enumerable.Range(0, 1000)
            .Select(i => (Due: i * TicksPerSecond / 100, LatencyMs: i % 100 == 50 ? 60.0 : 5.0))
            .ToList();

        var tail = TailWindows.Of(messages, TicksPerSecond)!;

        Assert.Equal(10, tail.Slow);
        Assert.Equal(10, tail.WindowsWithSlow);
        Assert.Equal(1, tail.WorstWindowSlow);
        Assert.Equal(0.5, tail.WorstWindowStartSeconds, 3);
    }

    [Fact]
    public void No_messages_no_figure() => Assert.Null(TailWindows.Of([], TicksPerSecond));
}
