using System.Text.Json;

namespace MailMesh.Testing.Postfix;

/// <summary>One message in a Postfix queue, as <c>postqueue -j</c> reports it (postqueue(1), "JSON OBJECT FORMAT").</summary>
public sealed record PostfixQueueEntry(string QueueName, string QueueId, string Sender, IReadOnlyList<PostfixQueuedRecipient> Recipients)
{
    /// <summary>Parses postqueue -j output: one JSON object per line.</summary>
    public static IReadOnlyList<PostfixQueueEntry> ParseLines(string output)
    {
        var entries = new List<PostfixQueueEntry>();
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            var recipients = root.TryGetProperty("recipients", out var list)
                ? [.. list.EnumerateArray().Select(r => new PostfixQueuedRecipient(
                    r.GetProperty("address").GetString() ?? string.Empty,
                    r.TryGetProperty("delay_reason", out var reason) ? reason.GetString() : null))]
                : Array.Empty<PostfixQueuedRecipient>();
            entries.Add(new PostfixQueueEntry(
                root.GetProperty("queue_name").GetString() ?? string.Empty,
                root.GetProperty("queue_id").GetString() ?? string.Empty,
                root.GetProperty("sender").GetString() ?? string.Empty,
                recipients));
        }

        return entries;
    }

    public override string ToString() =>
        $"{QueueId} ({QueueName}) from <{Sender}>: " +
        string.Join("; ", Recipients.Select(r => r.DelayReason is null ? r.Address : $"{r.Address} ({r.DelayReason})"));
}

/// <summary>A recipient of a queued message and, when deferred, why.</summary>
public sealed record PostfixQueuedRecipient(string Address, string? DelayReason);
