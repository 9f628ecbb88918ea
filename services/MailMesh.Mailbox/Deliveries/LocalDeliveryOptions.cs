using MailMesh.ServiceDefaults;
using SmtpMailbox = MailMesh.Smtp.Mailbox;

namespace MailMesh.Mailbox.Deliveries;

/// <summary>Local delivery into the mail store (section "Mailbox"; the listeners' keys live beside these).</summary>
public sealed class LocalDeliveryOptions : IValidatedOptions
{
    public static string SectionName => "Mailbox";

    /// <summary>The name this server gives itself in the Received line it adds at final delivery (RFC 5321 §4.4).</summary>
    public string HostName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>Work items (one message, its recipients at one mailbox domain) stored at once by one replica.</summary>
    public int DeliveryConcurrency { get; set; } = 16;

    /// <summary>Longest wait for one store or spool call before it counts as failed.</summary>
    public TimeSpan StoreTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a stored result is retried into the spool's outbox before it is published on the bus instead.</summary>
    public TimeSpan ResultRetryTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// How long the exactly-once key of a stored recipient is kept. It must outlive every later attempt of that
    /// recipient, which ends at Queue:MaxAge at the latest (5 days by default).
    /// </summary>
    public TimeSpan DeliveryKeyRetention { get; set; } = TimeSpan.FromDays(30);

    public IEnumerable<string> Validate()
    {
        const string P = "Mailbox:";
        if (string.IsNullOrWhiteSpace(HostName) || !SmtpMailbox.IsValidDomain(HostName))
        {
            yield return $"{P}{nameof(HostName)}: '{HostName}' is not a domain name";
        }

        if (DeliveryConcurrency is < 1 or > 1024)
        {
            yield return $"{P}{nameof(DeliveryConcurrency)}: must be between 1 and 1024 (was {DeliveryConcurrency})";
        }

        if (StoreTimeout <= TimeSpan.Zero)
        {
            yield return $"{P}{nameof(StoreTimeout)}: must be positive (was {StoreTimeout})";
        }

        if (DeliveryKeyRetention < TimeSpan.FromDays(1))
        {
            yield return $"{P}{nameof(DeliveryKeyRetention)}: must be at least a day, and longer than Queue:MaxAge (was {DeliveryKeyRetention})";
        }

        if (ResultRetryTimeout < StoreTimeout)
        {
            yield return $"{P}{nameof(ResultRetryTimeout)}: must be at least Mailbox:StoreTimeout (was {ResultRetryTimeout})";
        }
    }
}
