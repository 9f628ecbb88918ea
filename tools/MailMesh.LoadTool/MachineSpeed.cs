using System.Diagnostics;
using System.Globalization;

namespace MailMesh.LoadTool;

/// <summary>
/// A fixed single-core workload timed on the wall clock, printed before and after each run: this VM's speed changed by
/// about half within one evening with no steal time shown (docs/performance.md, session 22), so figures from two runs
/// compare only when this does.
/// </summary>
internal static class MachineSpeed
{
    private const int Count = 4 * 1024 * 1024;

    /// <summary>Sorting the same 4 Mi random integers on one thread, the median of <paramref name="rounds"/>, in
    /// milliseconds: branches and memory, as the services' own work, not a dedicated instruction.</summary>
    public static double Measure(int rounds = 3)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rounds, 1);
        var source = new int[Count];
        var random = new Random(8);
        for (var i = 0; i < source.Length; i++)
        {
            source[i] = random.Next();
        }

        var work = new int[Count];
        var times = new double[rounds];
        for (var i = 0; i < rounds; i++)
        {
            source.CopyTo(work, 0);
            var clock = Stopwatch.StartNew();
            Array.Sort(work);
            times[i] = clock.Elapsed.TotalMilliseconds;
        }

        Array.Sort(times);
        return times[rounds / 2];
    }

    /// <summary>The line the load tool prints: <paramref name="when"/> and <see cref="Measure"/>'s time.</summary>
    public static string Describe(string when) => Describe(when, Measure());

    internal static string Describe(string when, double milliseconds) => string.Create(
        CultureInfo.InvariantCulture,
        $"load: machine check {when}: sorting 4 Mi integers on one core, median of 3: {milliseconds:F0} ms (lower is faster; compare runs only when this agrees)");
}
