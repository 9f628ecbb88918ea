namespace MailMesh.Storage;

/// <summary>
/// Traffic per minute from the spool's own history, for the admin dashboard's charts: messages accepted (received) and
/// attempts by the state they led to. Cluster-wide (every replica writes the same tables), unlike one process's metrics.
/// </summary>
public interface ISpoolRates
{
    /// <summary>
    /// Counts per minute (UTC, minutes with anything in them) from the minute of <paramref name="since"/> on, oldest
    /// first. Purged messages and their attempts are no longer counted (the purge keeps far more than an hour).
    /// </summary>
    Task<IReadOnlyList<MinuteCounts>> CountPerMinuteAsync(DateTimeOffset since, CancellationToken cancellationToken);
}

/// <summary>One minute of traffic. <see cref="Bounced"/> counts bounces and expiries (attempts that ended a recipient in failure).</summary>
public sealed record MinuteCounts(DateTimeOffset Minute, long Accepted, long Delivered, long Deferred, long Bounced);

/// <summary>Folds (minute, state, count) rows, state −1 meaning accepted messages, into <see cref="MinuteCounts"/>.</summary>
internal static class MinuteCountsFolder
{
    /// <summary>The state column's marker for the accepted-messages rows.</summary>
    public const int Accepted = -1;

    public static IReadOnlyList<MinuteCounts> Fold(IEnumerable<(DateTimeOffset Minute, int State, long Count)> rows)
    {
        var minutes = new SortedDictionary<DateTimeOffset, MinuteCounts>();
        foreach (var (minute, state, count) in rows)
        {
            var current = minutes.GetValueOrDefault(minute) ?? new MinuteCounts(minute, 0, 0, 0, 0);
            minutes[minute] = state switch
            {
                Accepted => current with { Accepted = current.Accepted + count },
                (int)RecipientState.Delivered => current with { Delivered = current.Delivered + count },
                (int)RecipientState.Deferred => current with { Deferred = current.Deferred + count },
                (int)RecipientState.Bounced or (int)RecipientState.Expired => current with { Bounced = current.Bounced + count },
                _ => current,
            };
        }

        return [.. minutes.Values];
    }
}
