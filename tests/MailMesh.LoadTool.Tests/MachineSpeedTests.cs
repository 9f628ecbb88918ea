namespace MailMesh.LoadTool.Tests;

/// <summary>The machine check printed around each load run (docs/performance.md, session 22).</summary>
public sealed class MachineSpeedTests
{
    [Fact]
    public void The_check_times_its_workload_and_refuses_no_rounds()
    {
        Assert.True(MachineSpeed.Measure(rounds: 1) > 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => MachineSpeed.Measure(rounds: 0));
    }

    [Fact]
    public void The_line_names_the_moment_and_the_time_in_whole_milliseconds()
    {
        Assert.Equal(
            "load: machine check before the runs: sorting 4 Mi integers on one core, median of 3: 213 ms (lower is faster; compare runs only when this agrees)",
            MachineSpeed.Describe("before the runs", 212.6));
    }
}
