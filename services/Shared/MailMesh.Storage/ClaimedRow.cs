namespace MailMesh.Storage;

/// <summary>One claimed recipient as a store reads it back; grouped into <see cref="DeliveryJob"/>s by lease.</summary>
internal readonly record struct ClaimedRow(
    Guid MessageId,
    string Domain,
    Guid LeaseId,
    DateTimeOffset ReceivedAt,
    string? TraceParent,
    DateTimeOffset DueAt,
    ClaimedRecipient Recipient)
{
    /// <summary>The message's source-IP pool (issue 11), or null.</summary>
    public string? Pool { get; init; }

    /// <summary>
    /// One job per lease (one lease per message and domain), most overdue first; recipients in the order they
    /// were given at RCPT time.
    /// </summary>
    public static IReadOnlyList<DeliveryJob> ToJobs(List<ClaimedRow> rows, DateTimeOffset leaseExpiresAt)
    {
        if (rows.Count == 0)
        {
            return [];
        }

        rows.Sort(static (a, b) =>
        {
            var byDue = a.DueAt.CompareTo(b.DueAt);
            return byDue != 0 ? byDue : a.Recipient.RecipientId.CompareTo(b.Recipient.RecipientId);
        });

        var groups = new Dictionary<Guid, List<ClaimedRow>>();
        var order = new List<Guid>();
        foreach (var row in rows)
        {
            if (!groups.TryGetValue(row.LeaseId, out var group))
            {
                groups[row.LeaseId] = group = [];
                order.Add(row.LeaseId);
            }

            group.Add(row);
        }

        var jobs = new List<DeliveryJob>(order.Count);
        foreach (var leaseId in order)
        {
            var group = groups[leaseId];
            group.Sort(static (a, b) => a.Recipient.RecipientId.CompareTo(b.Recipient.RecipientId));
            var first = group[0];
            jobs.Add(new DeliveryJob
            {
                MessageId = first.MessageId,
                Domain = first.Domain,
                LeaseId = leaseId,
                LeaseExpiresAt = leaseExpiresAt,
                ReceivedAt = first.ReceivedAt,
                TraceParent = first.TraceParent,
                Pool = first.Pool,
                Recipients = group.ConvertAll(static r => r.Recipient),
            });
        }

        return jobs;
    }
}
