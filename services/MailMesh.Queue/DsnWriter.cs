using System.Net;
using MailMesh.Contracts;
using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>
/// Queues a delivery status notification to a message's sender: builds it, stores it in the spool as a new message
/// from the null sender, and announces it like any received message so the scheduler picks it up at once.
/// </summary>
internal sealed class DsnWriter(
    ISpool spool,
    QueueMetrics metrics,
    QueueEvents events,
    IOptions<QueueOptions> options,
    TimeProvider time,
    ILogger<DsnWriter> logger)
{
    private readonly QueueOptions _options = options.Value;

    /// <summary>The name reported in Reporting-MTA and MAILER-DAEMON@.</summary>
    public string ReportingMta { get; } = string.IsNullOrWhiteSpace(options.Value.Hostname) ? Dns.GetHostName() : options.Value.Hostname;

    /// <summary>
    /// Stores the DSN under <paramref name="dsnId"/>. Returns false when the original is gone, when its sender is the
    /// null sender, or when a DSN with this id was already queued (a redelivered result).
    /// </summary>
    /// <param name="eventSink">
    /// Where the <see cref="MessageEventType.DsnQueued"/> event goes when the caller publishes events of its own in one
    /// batch (applying results: after the events it reports on); null publishes it at once.
    /// </param>
    public async Task<bool> QueueAsync(
        Guid messageId,
        Guid dsnId,
        string kind,
        IReadOnlyList<DsnRecipient> recipients,
        CancellationToken cancellationToken,
        ICollection<MessageEvent>? eventSink = null)
    {
        var original = await spool.GetMessageAsync(messageId, cancellationToken);

        // RFC 5321 §4.5.5 and RFC 3461 §6.2: a message from the null sender (itself a DSN) gets no DSN, ever.
        if (original is null || original.Sender.Length == 0 || original.Origin == MessageOrigin.Dsn)
        {
            return false;
        }

        var now = time.GetUtcNow();
        var content = DsnBuilder.Build(original, recipients, ReportingMta, dsnId, now, _options.DsnMaxReturnedSize);
        var stored = await spool.StoreAsync(
            new NewMessage
            {
                Id = dsnId,
                Sender = string.Empty,
                Recipients = [new NewRecipient { Address = original.Sender, Notify = "NEVER" }],
                Content = content,
                ReceivedAt = now,
                Origin = MessageOrigin.Dsn,

                // The returned original may carry 8-bit text or a UTF-8 envelope; the DSN inherits what it needs.
                BodyType = original.BodyType == BodyType.SevenBit ? BodyType.SevenBit : BodyType.EightBitMime,
                SmtpUtf8 = original.SmtpUtf8,
                TraceParent = Telemetry.CurrentTraceParent(),
            },
            cancellationToken);

        if (!stored)
        {
            logger.DsnDuplicate(dsnId, messageId);
            return false;
        }

        metrics.DsnGenerated(kind);
        logger.DsnQueued(kind, dsnId, messageId, original.Sender, recipients.Count);

        // If this publish is lost the DSN still goes out: it is Queued in the spool and the next poll claims it.
        await events.PublishAsync(
            new MessageReceived { MessageId = dsnId, Sender = string.Empty, RecipientCount = 1, Size = content.Length, ReceivedAt = now },
            cancellationToken);
        var queued = new MessageEvent { MessageId = messageId, Type = MessageEventType.DsnQueued, Recipient = original.Sender, Text = kind, Timestamp = now };
        if (eventSink is not null)
        {
            eventSink.Add(queued);
        }
        else
        {
            await events.PublishAsync(queued, cancellationToken);
        }

        return true;
    }
}
