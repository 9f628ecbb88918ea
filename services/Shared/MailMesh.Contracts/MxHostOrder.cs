namespace MailMesh.Contracts;

/// <summary>The order in which to try the exchangers of an <see cref="MxResolved"/> answer.</summary>
public static class MxHostOrder
{
    /// <summary>
    /// RFC 5321 §5.1: hosts are sorted by preference; hosts of equal preference are tried in random order, on every use
    /// of the answer, cached or not, so that load spreads over them.
    /// </summary>
    public static IReadOnlyList<MxHost> ShuffleEqualPreferences(IReadOnlyList<MxHost> sorted)
    {
        ArgumentNullException.ThrowIfNull(sorted);
        if (sorted.Count < 2)
        {
            return sorted;
        }

        var result = sorted.ToArray();
        var start = 0;
        while (start < result.Length)
        {
            var end = start + 1;
            while (end < result.Length && result[end].Preference == result[start].Preference)
            {
                end++;
            }

            if (end - start > 1)
            {
                Random.Shared.Shuffle(result.AsSpan(start, end - start));
            }

            start = end;
        }

        return result;
    }
}
