using MailMesh.Chaos;

namespace MailMesh.Chaos.IntegrationTests;

/// <summary>
/// The verdict of a fault-injection run (issue 7 §7): nothing lost, nothing duplicated outside the documented window
/// (a SIGKILL of Delivery after the destination read the final "."), and duplicates within the run's ratio.
/// </summary>
public sealed class ChaosVerdictTests
{
    [Fact]
    public void A_duplicate_in_the_documented_window_within_the_ratio_passes()
    {
        var result = Result(accepted: 600, duplicated: 1, inWindow: 1, maxRatio: 0.01);

        Assert.True(result.Passed, result.Format());
        Assert.Contains("outside it: 0", result.Format(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_duplicate_outside_the_documented_window_fails_whatever_the_ratio()
    {
        var result = Result(accepted: 100_000, duplicated: 1, inWindow: 0, maxRatio: 0.001);

        Assert.False(result.Passed);
        Assert.Contains(result.Failures(), f => f.Contains("outside the documented window", StringComparison.Ordinal));
    }

    [Fact]
    public void Window_duplicates_above_the_ratio_fail()
    {
        var result = Result(accepted: 6000, duplicated: 19, inWindow: 19, maxRatio: 0.001);

        Assert.False(result.Passed);
        Assert.Contains(result.Failures(), f => f.StartsWith("19 messages duplicated (0.317 %", StringComparison.Ordinal));
    }

    [Fact]
    public void A_lost_message_fails()
    {
        var result = Result(accepted: 600, duplicated: 0, inWindow: 0, maxRatio: 0.01, lost: 1);

        Assert.False(result.Passed);
        Assert.Contains(result.Failures(), f => f.StartsWith("1 accepted messages lost", StringComparison.Ordinal));
    }

    private static ChaosResult Result(int accepted, int duplicated, int inWindow, double maxRatio, int lost = 0)
    {
        var total = new PhaseResult
        {
            Name = "total",
            Sent = accepted,
            Accepted = accepted,
            Delivered = accepted - lost,
            Lost = lost,
            Duplicated = duplicated,
            WindowDuplicated = inWindow,
            ExtraCopies = duplicated,
        };
        return new ChaosResult { Phases = [total with { Name = "paced" }], Total = total, MaxDuplicateRatio = maxRatio, Drained = true };
    }
}
