namespace MailMesh.LoadTool.Tests;

/// <summary>Where the slowest 1 % of a paced run spent their time: in the client, at the commands, or after the content.</summary>
public sealed class TailPhasesTests
{
    [Fact]
    public void The_slowest_percent_is_split_into_its_phases()
    {
        // 1,000 messages of 6 ms (1 at the commands, 5 after the content); the ten slowest waited 2 ms for a connection,
        // 30 ms for the replies to the commands and 8 ms after the content.
        var messages = Enumerable.Range(0, 1000)
            .Select(i => i % 100 == 7 ? new MessagePhases(LatencyMs: 40, FromSendMs: 38, CommandsMs: 30) : new MessagePhases(6, 6, 1))
            .ToList();

        var phases = TailPhases.Of(messages)!;

        Assert.Equal(2, phases.WaitMs, 6);
        Assert.Equal(30, phases.CommandsMs, 6);
        Assert.Equal(8, phases.ContentMs, 6);
    }

    [Fact]
    public void The_figures_are_medians_over_the_slowest_percent()
    {
        // 200 messages: the slowest 1 % is two, one stalled at the commands and one after the content.
        var messages = Enumerable.Range(0, 198).Select(_ => new MessagePhases(5, 5, 1)).ToList();
        messages.Add(new MessagePhases(LatencyMs: 50, FromSendMs: 50, CommandsMs: 45));
        messages.Add(new MessagePhases(LatencyMs: 60, FromSendMs: 60, CommandsMs: 5));

        var phases = TailPhases.Of(messages)!;

        Assert.Equal(0, phases.WaitMs, 6);
        Assert.Equal(25, phases.CommandsMs, 6);
        Assert.Equal(30, phases.ContentMs, 6);
    }

    [Fact]
    public void No_messages_no_figure() => Assert.Null(TailPhases.Of([]));
}
