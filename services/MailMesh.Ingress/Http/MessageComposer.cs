using MimeKit;

namespace MailMesh.Ingress.Http;

/// <summary>Builds the RFC 5322 message of a JSON submission with MimeKit.</summary>
internal static class MessageComposer
{
    private static readonly FormatOptions Format = CreateFormat();

    /// <summary>
    /// Writes the message as it will be stored to <paramref name="output"/>: From, To, Cc, Reply-To, Subject, Date and
    /// Message-ID (the client's when given, RFC 5322 §3.6.1 and §3.6.4), the client's extra fields, and a MIME body (RFC
    /// 2045-2049): text and/or html (multipart/alternative), inline parts with a Content-ID (multipart/related),
    /// attachments (multipart/mixed). Bcc recipients are only in the envelope (RFC 5322 §3.6.3). The result is 7-bit
    /// (quoted-printable or base64 where needed) with lines of at most 998 octets and CRLF line ends, so every next hop
    /// accepts it. Text, html and attachments are decoded from the request body as they are written, a few KiB at a
    /// time: the only whole copy is what <paramref name="output"/> keeps.
    /// </summary>
    public static async Task ComposeAsync(JsonSubmission submission, DateTimeOffset date, string messageId, Stream output, CancellationToken cancellationToken)
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

        // BodyBuilder decides the structure; its text parts get placeholders whose content is replaced below by streams
        // over the request body (an empty text, like a missing one, makes no part: BodyBuilder's rule).
        var body = new BodyBuilder
        {
            TextBody = submission.Text is { IsEmpty: false } ? Placeholder : null,
            HtmlBody = submission.Html is { IsEmpty: false } ? Placeholder : null,
        };
        foreach (var attachment in submission.Attachments)
        {
            var linked = attachment.ContentId is not null;
            var part = new MimePart(attachment.ContentType)
            {
                // What AttachmentCollection.Add(name, data, type) sets, with base64 for every type (7-bit whatever the data).
                Content = new MimeContent(attachment.Content.OpenBase64(attachment.Length)),
                ContentTransferEncoding = ContentEncoding.Base64,
                ContentDisposition = new ContentDisposition(linked ? ContentDisposition.Inline : ContentDisposition.Attachment) { FileName = attachment.FileName },
            };
            part.ContentType.Name = attachment.FileName;
            if (linked)
            {
                part.ContentId = attachment.ContentId;
                part.ContentLocation = new Uri(attachment.FileName, UriKind.Relative);
                body.LinkedResources.Add(part);
            }
            else
            {
                body.Attachments.Add(part);
            }
        }

        message.Body = body.ToMessageBody();
        foreach (var part in message.BodyParts.OfType<TextPart>().Where(p => p.ContentDisposition is null))
        {
            // RFC 2046 §4.1.1: the canonical form of text has CRLF line breaks; quoted-printable keeps them as hard breaks.
            var (text, length) = part.IsHtml ? (submission.Html, submission.HtmlLength) : (submission.Text, submission.TextLength);
            if (text is { IsEmpty: false } source)
            {
                part.ContentType.Charset = "utf-8";
                part.Content = new MimeContent(source.OpenCanonicalText(length));
            }
        }

        // RFC 5322 §2.1.1 (998-octet lines) and a 7-bit body: quoted-printable or base64 chosen per text part.
        message.Prepare(EncodingConstraint.SevenBit, 998);
        await message.WriteToAsync(Format, output, cancellationToken);
    }

    private const string Placeholder = "-";

    private static FormatOptions CreateFormat()
    {
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        format.International = false;
        format.EnsureNewLine = true;
        return format;
    }
}
