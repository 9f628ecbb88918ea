using System.Globalization;
using System.Text;
using MailMesh.Storage;
using MimeKit;
using MimeKit.Utils;

namespace MailMesh.Queue;

/// <summary>RFC 3464 §2.3.3 Action field values.</summary>
internal enum DsnAction
{
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

/// <summary>One recipient's entry in a delivery status notification.</summary>
internal sealed record DsnRecipient
{
    public required string Address { get; init; }

    /// <summary>RFC 3461 ORCPT as received ("rfc822;user+2Bx@example.com", xtext-encoded), or null.</summary>
    public string? OriginalRecipient { get; init; }
    public required DsnAction Action { get; init; }

    /// <summary>RFC 3463 status, e.g. "5.1.1".</summary>
    public required string Status { get; init; }
    public string? RemoteMta { get; init; }
    public int? ReplyCode { get; init; }

    /// <summary>The enhanced code of the reply itself (Status may differ, e.g. 4.4.7 for an expiry).</summary>
    public string? ReplyEnhancedCode { get; init; }
    public string? ReplyText { get; init; }
    public DateTimeOffset? LastAttemptAt { get; init; }

    /// <summary>For <see cref="DsnAction.Delayed"/>: when MailMesh gives up (RFC 3464 §2.3.9).</summary>
    public DateTimeOffset? WillRetryUntil { get; init; }
}

/// <summary>
/// Builds RFC 3464 delivery status notifications: a multipart/report; report-type=delivery-status (RFC 6522) with a
/// human-readable part, a message/delivery-status part and the original message or its headers.
/// </summary>
internal static class DsnBuilder
{
    private static readonly FormatOptions CrLf = CreateFormat();

    /// <summary>Serialises the DSN with CRLF line ends, ready to be stored in the spool.</summary>
    /// <param name="original">The message the DSN reports on.</param>
    /// <param name="recipients">The recipients reported (at least one).</param>
    /// <param name="reportingMta">This MTA's host name.</param>
    /// <param name="dsnId">The DSN's own message id (used for its Message-ID header).</param>
    /// <param name="now">The DSN's Date.</param>
    /// <param name="maxReturnedSize">Originals larger than this are returned as headers only.</param>
    public static byte[] Build(
        StoredMessage original,
        IReadOnlyList<DsnRecipient> recipients,
        string reportingMta,
        Guid dsnId,
        DateTimeOffset now,
        long maxReturnedSize)
    {
        ArgumentOutOfRangeException.ThrowIfZero(recipients.Count);

        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Mail Delivery System", "MAILER-DAEMON@" + reportingMta));
        if (MailboxAddress.TryParse(original.Sender, out var sender))
        {
            message.To.Add(sender);
        }

        message.Subject = Subject(recipients);
        message.Date = now;
        message.MessageId = dsnId.ToString("N") + "@" + reportingMta;

        // RFC 3834 §5: a DSN is an automatic response; it must not trigger other automatic responses.
        message.Headers.Add("Auto-Submitted", "auto-replied");

        // RFC 6522 §3: the report is multipart/report with report-type=delivery-status.
        var report = new MultipartReport("delivery-status")
        {
            new TextPart("plain") { Text = HumanReadable(original, recipients, reportingMta), ContentTransferEncoding = ContentEncoding.QuotedPrintable },
            DeliveryStatus(original, recipients, reportingMta),
        };

        if (Original(original, recipients, maxReturnedSize) is { } returned)
        {
            report.Add(returned);
        }

        message.Body = report;

        using var stream = new MemoryStream();
        message.WriteTo(CrLf, stream);
        return stream.ToArray();
    }

    /// <summary>The RFC 3464 §2.3.3 Action keyword.</summary>
    public static string Keyword(DsnAction action) => action switch
    {
        DsnAction.Failed => "failed",
        DsnAction.Delayed => "delayed",
        DsnAction.Delivered => "delivered",
        DsnAction.Relayed => "relayed",
        DsnAction.Expanded => "expanded",
        _ => throw new ArgumentOutOfRangeException(nameof(action)),
    };

    /// <summary>RFC 3461 §4: decodes xtext ("+" followed by two upper-case hex digits stands for one octet).</summary>
    public static string DecodeXtext(string value)
    {
        if (!value.Contains('+', StringComparison.Ordinal))
        {
            return value;
        }

        var bytes = new List<byte>(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            if (value[i] == '+' && i + 2 < value.Length
                && byte.TryParse(value.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var octet))
            {
                bytes.Add(octet);
                i += 2;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(value[i].ToString()));
            }
        }

        return Encoding.UTF8.GetString([.. bytes]);
    }

    private static FormatOptions CreateFormat()
    {
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        return options;
    }

    private static string Subject(IReadOnlyList<DsnRecipient> recipients)
    {
        if (recipients.Any(r => r.Action == DsnAction.Failed))
        {
            return "Undelivered Mail Returned to Sender";
        }

        return recipients.Any(r => r.Action == DsnAction.Delayed)
            ? "Delayed Mail (still being retried)"
            : "Successful Mail Delivery Report";
    }

    private static string HumanReadable(StoredMessage original, IReadOnlyList<DsnRecipient> recipients, string reportingMta)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"This is the mail system at host {reportingMta}.\r\n\r\n");
        var failed = recipients.Where(r => r.Action == DsnAction.Failed).ToList();
        var delayed = recipients.Where(r => r.Action == DsnAction.Delayed).ToList();
        var succeeded = recipients.Where(r => r.Action is DsnAction.Delivered or DsnAction.Relayed or DsnAction.Expanded).ToList();

        if (failed.Count > 0)
        {
            text.Append("Your message could not be delivered to one or more recipients.\r\nIt is attached below.\r\n\r\n");
            AppendRecipients(text, failed);
        }

        if (delayed.Count > 0)
        {
            text.Append("Delivery to the following recipients has been delayed. The mail system will keep trying;\r\nyou do not need to resend the message.\r\n\r\n");
            AppendRecipients(text, delayed);
        }

        if (succeeded.Count > 0)
        {
            text.Append("Your message was successfully delivered to the destination(s) listed below. If the message\r\nwas delivered to a mailbox you will receive no further notifications; otherwise the destination\r\nmay still send a notification of its own.\r\n\r\n");
            AppendRecipients(text, succeeded);
        }

        text.Append(CultureInfo.InvariantCulture, $"The message was received on {DateUtils.FormatDate(original.ReceivedAt)}.\r\n");
        return text.ToString();
    }

    private static void AppendRecipients(StringBuilder text, List<DsnRecipient> recipients)
    {
        foreach (var recipient in recipients)
        {
            text.Append(CultureInfo.InvariantCulture, $"<{recipient.Address}>: ");
            if (recipient.ReplyCode is { } code)
            {
                text.Append(CultureInfo.InvariantCulture, $"{Diagnostic(code, recipient.ReplyEnhancedCode ?? recipient.Status, recipient.ReplyText)}");
            }
            else
            {
                text.Append(CultureInfo.InvariantCulture, $"status {recipient.Status}");
            }

            if (recipient.RemoteMta is { Length: > 0 } host)
            {
                text.Append(CultureInfo.InvariantCulture, $" (remote host {host})");
            }

            text.Append("\r\n\r\n");
        }
    }

    private static MessageDeliveryStatus DeliveryStatus(StoredMessage original, IReadOnlyList<DsnRecipient> recipients, string reportingMta)
    {
        var status = new MessageDeliveryStatus();

        // RFC 3464 §2.2: per-message fields.
        var perMessage = new HeaderList();
        if (original.EnvelopeId is { Length: > 0 } envelopeId)
        {
            perMessage.Add("Original-Envelope-Id", DecodeXtext(envelopeId));
        }

        perMessage.Add("Reporting-MTA", "dns; " + reportingMta);
        perMessage.Add("Arrival-Date", DateUtils.FormatDate(original.ReceivedAt));
        status.StatusGroups.Add(perMessage);

        // RFC 3464 §2.3: per-recipient fields, one group each.
        foreach (var recipient in recipients)
        {
            var group = new HeaderList();
            if (recipient.OriginalRecipient is { Length: > 0 } orcpt)
            {
                group.Add("Original-Recipient", OriginalRecipient(orcpt));
            }

            group.Add("Final-Recipient", AddressField(recipient.Address));
            group.Add("Action", Keyword(recipient.Action));
            group.Add("Status", recipient.Status);
            if (recipient.RemoteMta is { Length: > 0 } host)
            {
                group.Add("Remote-MTA", "dns; " + host);
            }

            if (recipient.ReplyCode is { } code)
            {
                group.Add("Diagnostic-Code", "smtp; " + Diagnostic(code, recipient.ReplyEnhancedCode ?? recipient.Status, recipient.ReplyText));
            }

            if (recipient.LastAttemptAt is { } last)
            {
                group.Add("Last-Attempt-Date", DateUtils.FormatDate(last));
            }

            if (recipient.Action == DsnAction.Delayed && recipient.WillRetryUntil is { } until)
            {
                group.Add("Will-Retry-Until", DateUtils.FormatDate(until));
            }

            status.StatusGroups.Add(group);
        }

        return status;
    }

    /// <summary>
    /// RFC 3464 §2.3.6 Diagnostic-Code: the SMTP reply as received. Multi-line replies are joined into one line; the
    /// enhanced code is prefixed when the text does not already start with it (RFC 3463 §2 / RFC 2034 §4).
    /// </summary>
    private static string Diagnostic(int code, string status, string? replyText)
    {
        var text = string.Join(' ', (replyText ?? string.Empty)
            .Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        if (!text.StartsWith(status, StringComparison.Ordinal))
        {
            text = text.Length == 0 ? status : status + " " + text;
        }

        return code.ToString(CultureInfo.InvariantCulture) + " " + text;
    }

    /// <summary>RFC 3464 §2.3.2: "rfc822; addr" for ASCII addresses; RFC 6533 §3 "utf-8; addr" for internationalised ones.</summary>
    private static string AddressField(string address) =>
        Ascii.IsValid(address) ? "rfc822; " + address : "utf-8; " + address;

    /// <summary>RFC 3464 §2.3.1: Original-Recipient is the ORCPT address type and the decoded address.</summary>
    private static string OriginalRecipient(string orcpt)
    {
        var separator = orcpt.IndexOf(';', StringComparison.Ordinal);
        return separator < 0
            ? "rfc822; " + DecodeXtext(orcpt)
            : orcpt[..separator].Trim() + "; " + DecodeXtext(orcpt[(separator + 1)..].Trim());
    }

    /// <summary>
    /// RFC 3461 §4.3: RET=HDRS returns only the headers; RET=FULL (or none, MTA's choice) the whole message, unless it is
    /// larger than the limit. Success reports return headers only: the sender already has the message.
    /// </summary>
    private static MimeEntity? Original(StoredMessage original, IReadOnlyList<DsnRecipient> recipients, long maxReturnedSize)
    {
        var content = original.Content;
        if (content.IsEmpty)
        {
            return null;
        }

        var anyFailed = recipients.Any(r => r.Action == DsnAction.Failed);
        var full = anyFailed
            && !string.Equals(original.Ret, "HDRS", StringComparison.OrdinalIgnoreCase)
            && content.Length <= maxReturnedSize;

        if (full)
        {
            using var stream = new MemoryStream(content.ToArray(), writable: false);
            return new MessagePart("rfc822") { Message = MimeMessage.Load(stream) };
        }

        using var headers = new MemoryStream(HeaderBlock(content.Span), writable: false);
        return new TextRfc822Headers { Message = MimeMessage.Load(headers) };
    }

    /// <summary>The header section of a message including the empty line that ends it (RFC 5322 §2.1).</summary>
    private static byte[] HeaderBlock(ReadOnlySpan<byte> content)
    {
        var end = content.IndexOf("\r\n\r\n"u8);
        if (end >= 0)
        {
            return content[..(end + 4)].ToArray();
        }

        end = content.IndexOf("\n\n"u8);
        return end >= 0 ? content[..(end + 2)].ToArray() : [.. content, .. "\r\n\r\n"u8];
    }
}
