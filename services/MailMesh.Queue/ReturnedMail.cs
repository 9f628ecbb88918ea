using MailMesh.Contracts;
using MailMesh.ServiceDefaults.Bounces;
using MailMesh.Storage;
using Microsoft.Extensions.Options;
using MimeKit;

namespace MailMesh.Queue;

/// <summary>What one returned report says about one recipient of the original message.</summary>
/// <param name="Complaint">An RFC 5965 feedback report (abuse complaint) rather than a delivery failure.</param>
/// <param name="Recipient">The original recipient's address (Final-Recipient / Original-Recipient, or Original-Rcpt-To).</param>
/// <param name="Status">RFC 3464 Status (e.g. 5.1.1), or null.</param>
/// <param name="Diagnostic">The remote MTA's reply from Diagnostic-Code without its type ("550 5.1.1 ..."), or the feedback type.</param>
internal sealed record ReturnedReport(bool Complaint, string Recipient, string? Status, string? Diagnostic);

/// <summary>
/// Reads mail that came back to a return path MailMesh issued (ReturnPath:Domain): an RFC 3464 delivery status
/// notification (<c>multipart/report; report-type=delivery-status</c>, its failed recipients) or an RFC 5965 feedback
/// report (<c>report-type=feedback-report</c>). Anything else (an auto-reply, a vacation notice) yields nothing.
/// </summary>
internal static class ReturnedReportParser
{
    public static IReadOnlyList<ReturnedReport> Parse(Stream content)
    {
        MimeMessage message;
        try
        {
            message = MimeMessage.Load(content);
        }
        catch (FormatException)
        {
            return [];
        }

        var report = message.Body as MultipartReport ?? message.BodyParts.OfType<MultipartReport>().FirstOrDefault();
        if (report is null)
        {
            return [];
        }

        if (string.Equals(report.ReportType, "delivery-status", StringComparison.OrdinalIgnoreCase))
        {
            var status = report.OfType<MessageDeliveryStatus>().FirstOrDefault();
            if (status is null)
            {
                return [];
            }

            // RFC 3464 §2.1: the first group is per-message, every further one per recipient; only failures bounce
            // ("delayed", "delivered", "relayed" and "expanded" are not).
            var reports = new List<ReturnedReport>();
            foreach (var group in status.StatusGroups.Skip(1))
            {
                if (!string.Equals(group["Action"]?.Trim(), "failed", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                var recipient = Address(group["Original-Recipient"]) ?? Address(group["Final-Recipient"]);
                if (recipient is not null)
                {
                    reports.Add(new ReturnedReport(false, recipient, group["Status"]?.Trim(), Typed(group["Diagnostic-Code"])));
                }
            }

            return reports;
        }

        if (string.Equals(report.ReportType, "feedback-report", StringComparison.OrdinalIgnoreCase))
        {
            var feedback = report.OfType<MessageFeedbackReport>().FirstOrDefault();
            if (feedback is null)
            {
                return [];
            }

            // RFC 5965 §3.2: Original-Rcpt-To when the reporter gives it; else the To of the returned original (§2 (c)).
            var recipient = Address(feedback.Fields["Original-Rcpt-To"]) ?? OriginalTo(report);
            return recipient is null ? [] : [new ReturnedReport(true, recipient, null, feedback.Fields["Feedback-Type"]?.Trim())];
        }

        return [];
    }

    /// <summary>RFC 3464 §2.3.2: "rfc822; user@example.com" (address-type, ';', address); a bare address is taken as is.</summary>
    private static string? Address(string? field)
    {
        if (string.IsNullOrWhiteSpace(field))
        {
            return null;
        }

        var semicolon = field.IndexOf(';', StringComparison.Ordinal);
        var address = (semicolon >= 0 ? field[(semicolon + 1)..] : field).Trim().Trim('<', '>');
        return address.Contains('@', StringComparison.Ordinal) ? address : null;
    }

    /// <summary>RFC 3464 §2.3.6: "smtp; 550 5.1.1 ..." (diagnostic-type, ';', text): the text.</summary>
    private static string? Typed(string? field)
    {
        if (string.IsNullOrWhiteSpace(field))
        {
            return null;
        }

        var semicolon = field.IndexOf(';', StringComparison.Ordinal);
        return string.Join(' ', (semicolon >= 0 ? field[(semicolon + 1)..] : field).Split((char[])['\r', '\n'], StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()));
    }

    private static string? OriginalTo(MultipartReport report)
    {
        var headers = report.OfType<MessagePart>().FirstOrDefault()?.Message?.Headers
            ?? (report.OfType<TextRfc822Headers>().FirstOrDefault()?.Message?.Headers);
        var to = headers?[HeaderId.To];
        return to is not null && InternetAddressList.TryParse(to, out var list) ? list.Mailboxes.FirstOrDefault()?.Address : null;
    }
}

/// <summary>
/// Applies mail that came back to a return path (ReturnPath:Domain), in place of delivering it: the scheduler hands it a
/// claimed job at the return-path domain. The report is matched to the original message (the token of the address it
/// came to) and recipient (the report's recipient among the original's), classified with the bounce rules, and announced
/// (<see cref="MessageEventType.Bounced"/> with the class, or <see cref="MessageEventType.Complained"/>); a hard class
/// suppresses the address as a bounce at RCPT would, a complaint always does (source "complaint"). The original
/// recipient's stored state is left as it is (it was delivered, as far as MailMesh could see). The returned mail's own
/// recipients are then recorded as delivered through the result outbox, as any attempt's result is.
/// </summary>
internal sealed class ReturnedMail(
    ISpool spool,
    IPolicyStore policyStore,
    BounceClassifier classifier,
    QueueEvents events,
    QueueMetrics metrics,
    ResultSignal resultSignal,
    IOptions<ReturnPathOptions> returnPath,
    IOptions<QueueOptions> options,
    TimeProvider time,
    ILogger<ReturnedMail> logger)
{
    private readonly QueueOptions _options = options.Value;

    /// <summary>Whether jobs at <paramref name="domain"/> are returned mail.</summary>
    public bool IsReturnPath(string domain) => returnPath.Value.IsReturnPathDomain(domain);

    public async Task ProcessAsync(DeliveryJob job, CancellationToken cancellationToken)
    {
        try
        {
            var now = time.GetUtcNow();
            var original = job.Recipients.Select(r => returnPath.Value.TryRead(r.Address, out var id) ? id : (Guid?)null).FirstOrDefault(id => id is not null);
            var applied = 0;
            var reports = 0;
            var stored = await spool.GetMessageAsync(job.MessageId, cancellationToken);
            if (stored is not null && original is { } originalId && await spool.GetStatusAsync(originalId, cancellationToken) is { } status)
            {
                using var content = new MemoryStream(stored.Content.ToArray(), writable: false);
                var parsed = ReturnedReportParser.Parse(content);
                reports = parsed.Count;
                foreach (var report in parsed)
                {
                    var recipient = status.Recipients.FirstOrDefault(r => string.Equals(r.Address, report.Recipient, StringComparison.OrdinalIgnoreCase));
                    if (recipient is not null)
                    {
                        await ApplyAsync(originalId, recipient, report, now, cancellationToken);
                        applied++;
                    }
                }
            }

            logger.ReturnedMailProcessed(job.MessageId, original, reports, applied);
            await RecordConsumedAsync(job, now, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The recipients stay in flight; the lease runs out and the scheduler hands the job here again.
            logger.ReturnedMailFailed(ex, job.MessageId);
        }
    }

    private async Task ApplyAsync(Guid messageId, RecipientStatus recipient, ReturnedReport report, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (report.Complaint)
        {
            await events.PublishAsync(
                new MessageEvent
                {
                    MessageId = messageId,
                    Type = MessageEventType.Complained,
                    Recipient = recipient.Address,
                    Text = report.Diagnostic,
                    Timestamp = now,
                },
                cancellationToken);
            await policyStore.AddSuppressionAsync(
                new Suppression { Address = recipient.Address, Reason = $"complaint ({report.Diagnostic ?? "abuse"})", CreatedAt = now, Source = SuppressionSources.Complaint },
                cancellationToken);
            metrics.Suppressed();
            return;
        }

        // The remote MTA's reply from Diagnostic-Code ("550 5.1.1 ..."), else the report's Status.
        var text = report.Diagnostic ?? string.Empty;
        var code = text.Length >= 3 && int.TryParse(text.AsSpan(0, 3), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var reply) ? reply : 550;
        var enhanced = report.Status ?? "5.0.0";
        var cls = classifier.Classify(code, enhanced, text, transient: false);
        await events.PublishAsync(
            new MessageEvent
            {
                MessageId = messageId,
                Type = MessageEventType.Bounced,
                Recipient = recipient.Address,
                ReplyCode = code,
                EnhancedCode = enhanced,
                Text = text,
                Timestamp = now,
                Class = cls,
            },
            cancellationToken);

        // The same rule as a refusal at RCPT: a permanent failure of a suppressing class (a DSN's failed recipient is a
        // statement about that recipient).
        if (_options.SuppressHardBounces && enhanced.StartsWith('5') && _options.SuppressingClasses.Contains(cls))
        {
            var reason = $"asynchronous bounce {enhanced} {text}".Trim();
            await policyStore.AddSuppressionAsync(
                new Suppression { Address = recipient.Address, Reason = reason.Length > 500 ? reason[..500] : reason, CreatedAt = now, Source = SuppressionSources.Bounce },
                cancellationToken);
            metrics.Suppressed();
        }
    }

    /// <summary>The returned mail's own recipients are done: a delivered result under the job's lease, in the outbox.</summary>
    private async Task RecordConsumedAsync(DeliveryJob job, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var attempt = new DeliveryAttempted
        {
            MessageId = job.MessageId,
            Domain = job.Domain,
            LeaseId = job.LeaseId,
            Results = [.. job.Recipients.Select(r => new RecipientResult
            {
                RecipientId = r.RecipientId,
                Address = r.Address,
                Outcome = DeliveryOutcome.Delivered,
                ReplyCode = 250,
                EnhancedCode = "2.0.0",
                ReplyText = "Returned mail processed",
            })],
            StartedAt = now,
            CompletedAt = now,
        };
        await Bounded.RunAsync(
            token => spool.RecordResultAsync(ResultPayload.ToPending(attempt), now, token), "recording returned mail", _options.StoreTimeout, time, cancellationToken);
        resultSignal.Poke();
    }
}
