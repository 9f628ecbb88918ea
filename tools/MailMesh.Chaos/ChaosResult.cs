using System.Globalization;
using System.Text;

namespace MailMesh.Chaos;

/// <summary>The counts of one phase, or of the whole run.</summary>
public sealed record PhaseResult
{
    public required string Name { get; init; }

    /// <summary>Transactions started.</summary>
    public int Sent { get; init; }

    /// <summary>Messages whose end of data was answered 250: MailMesh owes each exactly one delivery.</summary>
    public int Accepted { get; init; }

    /// <summary>Messages refused with a reply (4xx/5xx), or whose session broke before the end of data.</summary>
    public int Refused { get; init; }

    /// <summary>End of data sent, reply never seen (the session broke): MailMesh may or may not have stored it.</summary>
    public int Unconfirmed { get; init; }

    /// <summary>Unconfirmed messages that arrived at the destination anyway.</summary>
    public int UnconfirmedDelivered { get; init; }

    /// <summary>Distinct ids of the phase seen at the destination.</summary>
    public int Delivered { get; init; }

    /// <summary>Accepted and never seen at the destination.</summary>
    public int Lost { get; init; }

    /// <summary>Ids seen at the destination more than once.</summary>
    public int Duplicated { get; init; }

    /// <summary>
    /// Duplicated ids whose first copy's end of data reached the destination shortly before a SIGKILL of Delivery (within
    /// the destination's reply latency plus <see cref="ChaosOptions.KillWindowSlack"/>): the documented window, where
    /// the destination has the message and the process that would record its 250 is gone (RFC 1047).
    /// </summary>
    public int WindowDuplicated { get; init; }

    /// <summary>Duplicated ids outside the documented window: a defect, whatever the ratio.</summary>
    public int OtherDuplicated => Duplicated - WindowDuplicated;

    /// <summary>Arrivals beyond the first, over all duplicated ids.</summary>
    public int ExtraCopies { get; init; }

    public double LostRatio => Accepted == 0 ? 0 : (double)Lost / Accepted;

    public double DuplicateRatio => Accepted == 0 ? 0 : (double)Duplicated / Accepted;
}

/// <summary>What a fault-injection run saw, and whether it meets issue 7 §7: 0 lost, duplicates within the threshold.</summary>
public sealed record ChaosResult
{
    public required IReadOnlyList<PhaseResult> Phases { get; init; }

    public required PhaseResult Total { get; init; }

    public required double MaxDuplicateRatio { get; init; }

    /// <summary>Spool recipients by state when the run ended (state name → count); empty when the spool did not answer.</summary>
    public IReadOnlyDictionary<string, long> SpoolStates { get; init; } = new Dictionary<string, long>();

    /// <summary>Messages left in the broker's queues when the run ended, by queue; null when it did not answer.</summary>
    public IReadOnlyDictionary<string, long>? BrokerQueues { get; init; }

    /// <summary>True when the system became quiescent within the drain timeout; false when the drain timed out.</summary>
    public bool Drained { get; init; }

    public TimeSpan DrainTime { get; init; }

    public TimeSpan Elapsed { get; init; }

    /// <summary>Arrivals without an id (delivery status notifications) and 451 replies the destination gave.</summary>
    public long Unmarked { get; init; }

    public long Deferrals { get; init; }

    /// <summary>Faults that could not be injected or recovered from (a service that would not start again, ...).</summary>
    public IReadOnlyList<string> FaultErrors { get; init; } = [];

    /// <summary>Nothing accepted was lost, duplicates are within the threshold, every fault was injected, something was accepted.</summary>
    public bool Passed => !Failures().Any();

    /// <summary>The reasons the run failed, one per line; empty when it passed.</summary>
    public IEnumerable<string> Failures()
    {
        if (Total.Accepted == 0)
        {
            yield return "nothing was accepted";
        }

        if (Total.Lost > 0)
        {
            yield return $"{Total.Lost} accepted messages lost ({Percent(Total.LostRatio)})";
        }

        if (Total.OtherDuplicated > 0)
        {
            yield return $"{Total.OtherDuplicated} messages duplicated outside the documented window (their first copy did not arrive just before a SIGKILL of Delivery)";
        }

        if (Total.DuplicateRatio > MaxDuplicateRatio)
        {
            yield return $"{Total.Duplicated} messages duplicated ({Percent(Total.DuplicateRatio)} of accepted, more than {Percent(MaxDuplicateRatio)})";
        }

        foreach (var error in FaultErrors)
        {
            yield return error;
        }
    }

    /// <summary>The results table and verdict, as the load tool prints them.</summary>
    public string Format()
    {
        var text = new StringBuilder();
        text.AppendLine(Drained
            ? $"chaos: results (quiescent {DrainTime.TotalSeconds:F0} s after the last phase; run took {Elapsed.TotalSeconds:F0} s)"
            : $"chaos: results (NOT quiescent: drain timed out after {DrainTime.TotalSeconds:F0} s; run took {Elapsed.TotalSeconds:F0} s)");
        text.AppendLine(Row("phase", "sent", "accepted", "delivered", "lost", "duplicated", "refused", "unconfirmed"));
        foreach (var phase in Phases.Append(Total))
        {
            text.AppendLine(Row(
                phase.Name,
                N(phase.Sent),
                N(phase.Accepted),
                N(phase.Delivered),
                $"{N(phase.Lost)} ({Percent(phase.LostRatio)})",
                $"{N(phase.Duplicated)} ({Percent(phase.DuplicateRatio)})",
                N(phase.Refused),
                $"{N(phase.Unconfirmed)} ({N(phase.UnconfirmedDelivered)} arrived)"));
        }

        text.AppendLine($"duplicated in the documented window (first copy's end of data just before a SIGKILL of Delivery): {Total.WindowDuplicated}; outside it: {Total.OtherDuplicated}");
        text.AppendLine($"extra copies at the destination: {Total.ExtraCopies}; unmarked arrivals (DSNs): {Unmarked}; 451 deferrals given: {Deferrals}");
        text.AppendLine("spool recipients at the end: " + (SpoolStates.Count == 0 ? "(spool did not answer)" : string.Join(", ", SpoolStates.Select(s => $"{s.Key} {s.Value}"))));
        text.AppendLine("broker messages at the end: " + (BrokerQueues is null ? "(broker did not answer)"
            : $"{ChaosRun.WorkMessages(BrokerQueues)} in work queues, {BrokerQueues.Where(q => ChaosRun.IsDeadLetter(q.Key)).Sum(q => q.Value)} in _error/_skipped queues"
                + (BrokerQueues.Count == 0 ? "" : " (" + string.Join(", ", BrokerQueues.Select(q => $"{q.Key} {q.Value}")) + ")")));
        var failures = Failures().ToList();
        text.AppendLine(failures.Count == 0
            ? $"verdict: PASS (0 lost, none duplicated outside the documented window, duplicates {Percent(Total.DuplicateRatio)} <= {Percent(MaxDuplicateRatio)})"
            : "verdict: FAIL: " + string.Join("; ", failures));
        return text.ToString();
    }

    private static string Row(params string[] cells) =>
        $"{cells[0],-10} {cells[1],8} {cells[2],9} {cells[3],10} {cells[4],18} {cells[5],18} {cells[6],8} {cells[7],22}";

    private static string N(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Percent(double ratio) => (ratio * 100).ToString("0.000", CultureInfo.InvariantCulture) + " %";
}
