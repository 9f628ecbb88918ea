using System.Globalization;
using System.Text;

namespace MailMesh.LoadTool;

/// <summary>The runs as two compact Markdown tables: rates, latency and bus messages; CPU seconds per 1,000 messages.</summary>
internal static class Report
{
    public static string Format(IReadOnlyList<RunResult> runs)
    {
        var text = new StringBuilder();
        text.AppendLine("| # | target | client → sink | messages | accepted msg/s | end-to-end msg/s | backlog when client done | accept p50 / p99 ms (client) | accept p50 / p99 / p99.9 ms (server) | bus msgs per accepted mail | load avg before → after |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for (var i = 0; i < runs.Count; i++)
        {
            var r = runs[i];
            var latency = r.LatenciesMs.Length == 0 ? "n/a" : $"{F(Percentile(r.LatenciesMs, 0.50))} / {F(Percentile(r.LatenciesMs, 0.99))}";
            var server = r.ServerAccept is { } h && h.QuantileMs(0.50) is { } p50
                ? $"{F(p50)} / {F(h.QuantileMs(0.99)!.Value)} / {F(h.QuantileMs(0.999)!.Value)}"
                : "n/a";
            var delivered = r.Delivered == r.Accepted && r.DeliveredWithDuplicates == r.Delivered
                ? string.Empty
                : r.Sink == "smtp-sink"
                    // smtp-sink counts DATA transactions: more than were accepted means duplicates, but not which.
                    ? $" ({r.DeliveredWithDuplicates} arrivals for {r.Accepted} accepted: {(r.DeliveredWithDuplicates > r.Accepted ? $"≥ {r.DeliveredWithDuplicates - r.Accepted} duplicates" : "some missing")})"
                    : $" ({r.Delivered} of {r.Accepted} delivered, {r.DeliveredWithDuplicates - r.Delivered} duplicates)";
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {i + 1} | {r.Kind} | {r.Client} → {r.Sink} | {r.Messages} × {r.Size} B, {r.Connections} conn | {F(r.AcceptedRate)}{(r.Refused > 0 ? $" ({r.Refused} refused)" : "")} | {F(r.EndToEndRate)}{delivered} | {r.Accepted - r.DeliveredWhenClientDone} | {latency} | {server} | {Bus(r)} | {r.LoadBefore} → {r.LoadAfter} |"));
        }

        text.AppendLine();
        for (var i = 0; i < runs.Count; i++)
        {
            // A paced client's figure runs from each slot; the part of it that is the client's own timer waking late
            // (on a machine the server keeps busy) is the client's, not the server's.
            if (runs[i].WithoutOwnLatenessMs is { Length: > 0 } own)
            {
                text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"run {i + 1}: client accept p50 / p99 without the client's own timer lateness (paced run): {F(Percentile(own, 0.50))} / {F(Percentile(own, 0.99))} ms"));
                var r = runs[i];
                text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"run {i + 1}: from each MAIL written to its 250: {F(Percentile(r.FromSendMs, 0.50))} / {F(Percentile(r.FromSendMs, 0.99))} ms; slots that found all {r.Connections} connections busy: {r.QueuedSlots} of {r.Messages} ({F(100.0 * r.QueuedSlots / r.Messages)} %)"));
                if (r.Tail is { } tail)
                {
                    text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                        $"run {i + 1}: the slowest 1 % ({tail.Slow} messages, ≥ {F(tail.ThresholdMs)} ms) were due in {tail.WindowsWithSlow} of {tail.Windows} windows of 100 ms; the worst, {F(tail.WorstWindowStartSeconds)} s into the run, holds {tail.WorstWindowSlow} of them (a stall when few windows hold most, a queue when they are spread)"));
                    text.AppendLine($"run {i + 1}: the windows with the most of them start at (UTC, slow messages): {string.Join(", ", tail.Worst.Select(w => string.Create(CultureInfo.InvariantCulture, $"{w.StartUtc:HH:mm:ss.f} ({w.Slow})")))}");
                }

                if (r.Phases is { } phases)
                {
                    text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                        $"run {i + 1}: the slowest 1 % took (medians) {F(phases.WaitMs)} ms waiting for a free connection of the client, {F(phases.CommandsMs)} ms for the replies to MAIL, RCPT and DATA, {F(phases.ContentMs)} ms from the content written to the 250 (the end of data's checks and commit)"));
                }

                if (r.QueuedSlots * 100 > r.Messages)
                {
                    // More than 1 % of the slots waited for a connection: the p99 above is partly the client's own queue.
                    text.AppendLine($"run {i + 1}: over 1 % of the slots waited for a free connection of the client: its p99 includes that queue; run again with more --connections");
                }

                text.AppendLine();
            }
        }

        var names = runs.SelectMany(r => r.Cpu.Select(c => c.Name)).Distinct().ToList();
        text.AppendLine("CPU seconds per 1,000 accepted messages (utime+stime from /proc, whole process trees, before the first connection → pipeline settled):");
        text.AppendLine();
        text.AppendLine("| component | " + string.Join(" | ", runs.Select((r, i) => $"#{i + 1} {r.Kind}")) + " |");
        text.AppendLine("| --- |" + string.Concat(runs.Select(_ => " --- |")));
        foreach (var name in names)
        {
            text.AppendLine($"| {name} | " + string.Join(" | ", runs.Select(r => r.Cpu.Where(c => c.Name == name).Select(c => PerThousand(r, c.Seconds)).FirstOrDefault("–"))) + " |");
        }

        text.AppendLine("| **total** | " + string.Join(" | ", runs.Select(r => "**" + PerThousand(r, r.Cpu.Sum(c => c.Seconds)) + "**")) + " |");
        text.AppendLine("| CPU s in the run | " + string.Join(" | ", runs.Select(r => F(r.Cpu.Sum(c => c.Seconds)))) + " |");
        foreach (var (r, i) in runs.Select((r, i) => (r, i)).Where(x => x.r.Postgres is not null && x.r.Accepted > 0))
        {
            text.AppendLine();
            text.AppendLine($"PostgreSQL per accepted mail, #{i + 1} {r.Kind} (its own database): {r.Postgres!.PerMail(r.Accepted)}");
        }

        foreach (var r in runs.Where(r => r.OtherVirtualHosts.Count > 0))
        {
            text.AppendLine();
            text.AppendLine($"note: {r.Kind}: RabbitMQ's counters are node-wide and other virtual hosts had connections after the run ({string.Join(", ", r.OtherVirtualHosts.Select(v => $"{v.Key}: {v.Value}"))}); the broker figures may include their traffic.");
        }

        foreach (var r in runs.Where(r => r.Error is not null))
        {
            text.AppendLine($"error: {r.Kind}: {r.Error}");
        }

        return text.ToString();
    }

    private static string Bus(RunResult r)
    {
        if (r.Accepted == 0)
        {
            return "–";
        }

        var parts = new List<string>();
        if (r.MassTransitReceived is { } received)
        {
            parts.Add($"{F((double)received / r.Accepted)} received (MassTransit{(r.Kind == "standalone" ? ", in-memory" : "")})");
        }

        if (r.RabbitMq is { } rabbit)
        {
            parts.Add($"{F((double)rabbit.Published / r.Accepted)} published, {F((double)rabbit.Delivered / r.Accepted)} delivered (RabbitMQ)");
        }

        return parts.Count == 0 ? "n/a (no bus)" : string.Join("; ", parts);
    }

    private static string PerThousand(RunResult r, double seconds) => r.Accepted == 0 ? "–" : F(seconds * 1000 / r.Accepted, "F2");

    private static string F(double value, string format = "F1") => value.ToString(format, CultureInfo.InvariantCulture);

    internal static double Percentile(double[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}
