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
