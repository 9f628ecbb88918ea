using System.Globalization;
using System.Text.RegularExpressions;

namespace MailMesh.LoadTool;

/// <summary>
/// The accept latency as the server measures it: Ingress's <c>mailmesh.ingress.accept.duration</c> histogram (end of
/// DATA to the 250 reply: checks and the spool commit) for SMTP submissions, read from the services' /metrics before and
/// after the measured phase. The client's own figure (the built-in client's p50/p99) also holds the commands before
/// DATA, the transfer and, in a paced run, any wait for a CPU on the client's side; this one works with smtp-source too,
/// which reports no latencies. Quantiles are interpolated within the histogram's buckets, as Prometheus's
/// <c>histogram_quantile</c> does, so they are as coarse as the buckets (5, 10, 25, 50, 100, 250 ms, ...).
/// </summary>
internal static partial class AcceptHistogram
{
    /// <summary>Cumulative counts by upper bound (seconds; +Inf as <see cref="double.PositiveInfinity"/>), summed over endpoints.</summary>
    internal sealed record Buckets(IReadOnlyList<(double UpperBound, double Count)> Cumulative)
    {
        public double Total => Cumulative.Count == 0 ? 0 : Cumulative[^1].Count;

        public static Buckets operator -(Buckets after, Buckets before) =>
            new([.. after.Cumulative.Select(b => (b.UpperBound, b.Count - before.CountAt(b.UpperBound)))]);

        private double CountAt(double upperBound) => Cumulative.FirstOrDefault(b => b.UpperBound.Equals(upperBound)).Count;

        /// <summary>The <paramref name="q"/> quantile in milliseconds, linear within its bucket; null without observations.</summary>
        public double? QuantileMs(double q)
        {
            if (Total <= 0)
            {
                return null;
            }

            var rank = q * Total;
            double lower = 0, below = 0;
            foreach (var (upper, count) in Cumulative)
            {
                if (count >= rank)
                {
                    // Past the last finite bound there is nothing to interpolate to: report that bound, as Prometheus does.
                    if (double.IsPositiveInfinity(upper))
                    {
                        return lower * 1000;
                    }

                    var inBucket = count - below;
                    var fraction = inBucket <= 0 ? 1 : (rank - below) / inBucket;
                    return (lower + ((upper - lower) * fraction)) * 1000;
                }

                lower = upper;
                below = count;
            }

            return lower * 1000;
        }
    }

    /// <summary>The histogram summed over the expositions of one scrape (<see cref="MetricsScrape"/>); null if none has it.</summary>
    public static Buckets? From(IReadOnlyList<string> expositions)
    {
        var sums = new SortedDictionary<double, double>();
        foreach (var (upper, count) in expositions.SelectMany(Parse))
        {
            sums[upper] = sums.GetValueOrDefault(upper) + count;
        }

        return sums.Count == 0 ? null : new Buckets([.. sums.Select(s => (s.Key, s.Value))]);
    }

    /// <summary>The SMTP accept-duration bucket samples of one Prometheus text exposition.</summary>
    internal static IEnumerable<(double UpperBound, double Count)> Parse(string exposition)
    {
        foreach (var line in exposition.Split('\n'))
        {
            if (BucketPattern().Match(line) is { Success: true } match && line.Contains("mailmesh_origin=\"smtp\"", StringComparison.Ordinal))
            {
                var bound = match.Groups[1].Value == "+Inf"
                    ? double.PositiveInfinity
                    : double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
                yield return (bound, double.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture));
            }
        }
    }

    [GeneratedRegex(@"^mailmesh_ingress_accept_duration_seconds_bucket\{[^}]*le=""([^""]+)""[^}]*\}\s+([0-9.eE+-]+)")]
    private static partial Regex BucketPattern();
}
