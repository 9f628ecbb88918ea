using MimeKit;

namespace MailMesh.Ingress.Http;

/// <summary>Builds the RFC 5322 message of a JSON submission with MimeKit.</summary>
internal static class MessageComposer
{
    private static readonly FormatOptions Format = CreateFormat();

    /// <summary>
    /// The message as it will be stored: From, To, Cc, Reply-To, Subject, Date and Message-ID (the client's when given,
    /// RFC 5322 §3.6.1 and §3.6.4), the client's extra fields, and a MIME body (RFC 2045-2049): text and/or html
    /// (multipart/alternative), inline parts with a Content-ID (multipart/related), attachments (multipart/mixed). Bcc
    /// recipients are only in the envelope (RFC 5322 §3.6.3). The result is 7-bit (quoted-printable or base64 where
    /// needed) with lines of at most 998 octets and CRLF line ends, so every next hop accepts it.
    /// </summary>
    public static byte[] Compose(JsonSubmission submission, DateTimeOffset date, string messageId)
    {
        using var message = new MimeMessage();
        message.From.Add(submission.From.Header);
        message.To.AddRange(submission.To.Select(a => a.Header));
        message.Cc.AddRange(submission.Cc.Select(a => a.Header));
        message.ReplyTo.AddRange(submission.ReplyTo.Select(a => a.Header));
        if (submission.Subject is not null)
        {
            message.Subject = submission.Subject;
        }

        message.Date = submission.Date ?? date;
        message.MessageId = submission.MessageId ?? messageId;
        foreach (var (name, value) in submission.Headers)
        {
            message.Headers.Add(new Header(System.Text.Encoding.UTF8, name, value));
        }

        // RFC 2046 §4.1.1: the canonical form of text has CRLF line breaks; quoted-printable keeps them as hard breaks.
        var body = new BodyBuilder { TextBody = Canonical(submission.Text), HtmlBody = Canonical(submission.Html) };
        foreach (var attachment in submission.Attachments)
        {
            if (attachment.ContentId is { } contentId)
            {
                var part = body.LinkedResources.Add(attachment.FileName, attachment.Content, attachment.ContentType);
                part.ContentId = contentId;
            }
            else
            {
                body.Attachments.Add(attachment.FileName, attachment.Content, attachment.ContentType);
            }
        }

        message.Body = body.ToMessageBody();

        // RFC 5322 §2.1.1 (998-octet lines) and a 7-bit body: quoted-printable or base64 chosen per part.
        message.Prepare(EncodingConstraint.SevenBit, 998);
        using var stream = new MemoryStream();
        message.WriteTo(Format, stream);
        return stream.ToArray();
    }

    private static string? Canonical(string? text) =>
        text?.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n').Replace("\n", "\r\n", StringComparison.Ordinal);

    private static FormatOptions CreateFormat()
    {
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        format.International = false;
        format.EnsureNewLine = true;
        return format;
    }
}
