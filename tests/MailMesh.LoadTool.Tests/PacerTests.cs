using System.Diagnostics;

namespace MailMesh.LoadTool.Tests;

/// <summary>
/// A paced run's schedule starts when every connection is ready, and a settling pause after: the first slots are not
/// charged with opening the other connections (they were, and a paced run's p99 then included forty connections opened
/// at once), nor with the client's own work that follows it (issue 8, session 26).
/// </summary>
public sealed class PacerTests
{
    [Fact]
    public async Task The_schedule_starts_when_the_last_connection_is_ready()
    {
        var pacer = new Pacer(messagesPerSecond: 1000, connections: 3, settle: TimeSpan.Zero);
        var first = pacer.ConnectedAsync(CancellationToken.None);
        var second = pacer.ConnectedAsync(CancellationToken.None);
        await Task.Delay(50);
        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);

        var beforeLast = Stopwatch.GetTimestamp();
        await pacer.ConnectedAsync(CancellationToken.None);
        await Task.WhenAll(first, second);

        // Slot 0 is due at the schedule's start, which is not before the last connection was ready.
        var (due, _) = await pacer.NextAsync(CancellationToken.None);
        Assert.True(due >= beforeLast, "the first slot was due before every connection was ready");
        var (next, _) = await pacer.NextAsync(CancellationToken.None);
        Assert.Equal(Stopwatch.Frequency / 1000, next - due);
    }

    [Fact]
    public async Task The_first_slot_is_due_the_settling_time_after_the_last_connection_is_ready()
    {
        var settle = TimeSpan.FromMilliseconds(300);
        var pacer = new Pacer(messagesPerSecond: 1000, connections: 2, settle);
        var first = pacer.ConnectedAsync(CancellationToken.None);
        var beforeLast = Stopwatch.GetTimestamp();
        await pacer.ConnectedAsync(CancellationToken.None);
        var afterLast = Stopwatch.GetTimestamp();
        await first;

        // The client's own start (the connections just opened) is not on the clock: the first slot waits for the pause.
        Assert.InRange(pacer.Start, beforeLast + Ticks(settle), afterLast + Ticks(settle));
        var (due, _) = await pacer.NextAsync(CancellationToken.None);
        Assert.Equal(pacer.Start, due);
        Assert.True(Stopwatch.GetTimestamp() >= due, "the first slot was handed out before it was due");
        Assert.Equal(TimeSpan.FromSeconds(1), Pacer.Settle);
    }

    [Fact]
    public async Task A_connection_that_cannot_open_releases_the_others_with_its_error()
    {
        var pacer = new Pacer(messagesPerSecond: 1000, connections: 2);
        var waiting = pacer.ConnectedAsync(CancellationToken.None);

        pacer.Fail(new LoadClientException("refused at the greeting"));

        var error = await Assert.ThrowsAsync<LoadClientException>(() => waiting);
        Assert.Equal("refused at the greeting", error.Message);
    }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);
}
