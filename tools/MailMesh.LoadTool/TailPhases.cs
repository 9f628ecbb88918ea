namespace MailMesh.LoadTool;

/// <summary>One accepted message of a paced run, split where the client can see it.</summary>
/// <param name="LatencyMs">From its slot to the 250.</param>
/// <param name="FromSendMs">From MAIL, RCPT and DATA written (pipelined) to the 250.</param>
/// <param name="CommandsMs">From MAIL, RCPT and DATA written to the reply to DATA (354).</param>
internal readonly record struct MessagePhases(double LatencyMs, double FromSendMs, double CommandsMs);

/// <summary>
/// Where the slowest 1 % of a paced run spent their time, as medians over them: waiting in the client for a free
/// connection, waiting for the replies to MAIL, RCPT and DATA, and from the content written to the 250. The commands
/// need no disk and no commit, so a tail that sits there is the server not being scheduled (CPU, a garbage collection);
/// one after the content is the end of data's checks and the commit.
/// </summary>
internal sealed record TailPhases(double WaitMs, double CommandsMs, double ContentMs)
{
    public static TailPhases? Of(IReadOnlyList<MessagePhases> messages)
    {
        if (messages.Count == 0)
        {
            return null;
        }

        var slowest = messages.OrderByDescending(m => m.LatencyMs).Take(Math.Max(1, messages.Count / 100)).ToList();
        return new TailPhases(
            Median(slowest.Select(m => m.LatencyMs - m.FromSendMs)),
            Median(slowest.Select(m => m.CommandsMs)),
            Median(slowest.Select(m => m.FromSendMs - m.CommandsMs)));
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        var middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
