using System.Text.Json;
using MailMesh.Smtp;
using MimeKit;
using MimeKit.Utils;

namespace MailMesh.Ingress.Http;

/// <summary>A JSON submission after validation: every address parsed, text, html and attachments checked and measured
/// but left where they are in the request body (decoded while the message is composed).</summary>
internal sealed class JsonSubmission
{
    public required ParsedAddress From { get; init; }

    /// <summary>The explicit envelope sender, or null to use <see cref="From"/>.</summary>
    public Mailbox? EnvelopeFrom { get; init; }

    public required IReadOnlyList<ParsedAddress> To { get; init; }
    public required IReadOnlyList<ParsedAddress> Cc { get; init; }
    public required IReadOnlyList<ParsedAddress> Bcc { get; init; }
    public required IReadOnlyList<ParsedAddress> ReplyTo { get; init; }
    public string? Subject { get; init; }
    public JsonText? Text { get; init; }
    public JsonText? Html { get; init; }

    /// <summary>Octets of <see cref="Text"/> and <see cref="Html"/> as composed (UTF-8, CRLF line ends).</summary>
    public long TextLength { get; init; }
    public long HtmlLength { get; init; }

    /// <summary>Extra header fields, in request order (Date and Message-ID are taken out into their own properties).</summary>
    public required IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; }
    public DateTimeOffset? Date { get; init; }

    /// <summary>The client's Message-ID without angle brackets, or null to generate one.</summary>
    public string? MessageId { get; init; }
    public required IReadOnlyList<JsonAttachment> Attachments { get; init; }

    /// <summary>The source-IP pool the message asks for (member <c>pool</c>), or null.</summary>
    public string? Pool { get; init; }

    /// <summary>The envelope sender (RFC 5321 MAIL FROM): envelopeFrom, or the From address.</summary>
    public Mailbox Sender => EnvelopeFrom ?? From.Envelope;

    /// <summary>to + cc + bcc: every envelope recipient, including those not shown in any header.</summary>
    public IEnumerable<Mailbox> Recipients => To.Concat(Cc).Concat(Bcc).Select(a => a.Envelope);
}

/// <summary>An attachment: its base64 <paramref name="Content"/> as sent (a slice of the body) and its decoded length.</summary>
internal sealed record JsonAttachment(string FileName, ContentType ContentType, JsonText Content, long Length, string? ContentId);

/// <summary>
/// Reads and validates the JSON body of <c>POST /api/v1/messages</c>. Every problem is collected with a JSON Pointer
/// (RFC 6901) to the member at fault, so the client learns everything that is wrong from one answer.
/// </summary>
internal static class JsonSubmissionReader
{
    /// <summary>Header fields a client may not set: the API sets them, or they would forge transport or structure.</summary>
    private static readonly Dictionary<string, string> ReservedHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        ["From"] = "use the 'from' member",
        ["To"] = "use the 'to' member",
        ["Cc"] = "use the 'cc' member",
        ["Bcc"] = "use the 'bcc' member (Bcc recipients never appear in the header section, RFC 5322 §3.6.3)",
        ["Reply-To"] = "use the 'replyTo' member",
        ["Subject"] = "use the 'subject' member",
        ["Received"] = "trace fields are added by MTAs only (RFC 5321 §4.4)",
        ["Return-Path"] = "Return-Path is added at final delivery (RFC 5321 §4.4)",
        ["Delivered-To"] = "Delivered-To is added at final delivery",
        ["MIME-Version"] = "the MIME structure is built from text, html and attachments",
        ["DKIM-Signature"] = "signatures are added by MailMesh, never taken from the client",
        ["DomainKey-Signature"] = "signatures are added by MailMesh, never taken from the client",
        ["ARC-Seal"] = "ARC fields are added by MTAs only (RFC 8617)",
        ["ARC-Message-Signature"] = "ARC fields are added by MTAs only (RFC 8617)",
        ["ARC-Authentication-Results"] = "ARC fields are added by MTAs only (RFC 8617)",
        ["Authentication-Results"] = "authentication results are added by the receiving MTA (RFC 8601)",
        ["Received-SPF"] = "SPF results are added by the receiving MTA (RFC 7208 §9.1)",
    };

    private static readonly JsonReaderOptions ReaderOptions = new()
    {
        CommentHandling = JsonCommentHandling.Disallow,
        MaxDepth = 16,
    };

    /// <summary>Parses the body; a syntax error is returned in <paramref name="malformed"/>, invalid content in <paramref name="errors"/>.</summary>
    public static JsonSubmission? Read(ReadOnlyMemory<byte> body, out string? malformed, out List<ProblemError> errors)
    {
        errors = [];
        malformed = null;
        JsonItem root;
        try
        {
            // The body stays where it is (a budgeted buffer); the tree holds slices of it.
            root = JsonTree.Parse(body, ReaderOptions);
        }
        catch (JsonLimitException ex)
        {
            malformed = ex.Message;
            return null;
        }
        catch (JsonException ex)
        {
            malformed = ex.LineNumber is { } line
                ? $"The body is not valid JSON (RFC 8259): error at line {line + 1}, byte {ex.BytePositionInLine + 1}."
                : "The body is not valid JSON (RFC 8259).";
            if (ex.Message.Contains("duplicate", StringComparison.OrdinalIgnoreCase))
            {
                malformed = "The body is not valid here: a member name appears twice in one object" + (ex.Path is { } p ? $" ({p})." : ".");
            }

            return null;
        }

        return Read(root, errors);
    }

    private static JsonSubmission? Read(JsonItem root, List<ProblemError> errors)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            errors.Add(ProblemError.AtPointer(string.Empty, "the body must be a JSON object"));
            return null;
        }

        ParsedAddress? from = null;
        Mailbox? envelopeFrom = null;
        List<ParsedAddress> to = [], cc = [], bcc = [], replyTo = [];
        string? subject = null, messageId = null;
        JsonText? text = null, html = null;
        long textLength = 0, htmlLength = 0;
        DateTimeOffset? date = null;
        List<KeyValuePair<string, string>> headers = [];
        List<JsonAttachment> attachments = [];
        var sawFrom = false;
        string? pool = null;

        foreach (var (name, value) in root.Members)
        {
            var pointer = "/" + EscapePointer(name);
            if (value.ValueKind == JsonValueKind.Null)
            {
                // null is "absent" for every member.
                continue;
            }

            switch (name)
            {
                case "from":
                    sawFrom = true;
                    if (String(value, pointer, errors) is { } fromText)
                    {
                        if (Addresses.TryParseMailbox(fromText, out var address, out var error))
                        {
                            from = address;
                        }
                        else
                        {
                            errors.Add(ProblemError.AtPointer(pointer, error));
                        }
                    }

                    break;
                case "envelopeFrom":
                    if (String(value, pointer, errors) is { } envelopeText)
                    {
                        if (Addresses.TryParseMailbox(envelopeText, out var address, out var error))
                        {
                            envelopeFrom = address.Envelope;
                        }
                        else
                        {
                            errors.Add(ProblemError.AtPointer(pointer, error));
                        }
                    }

                    break;
                case "to":
                    AddressList(value, pointer, to, errors);
                    break;
                case "cc":
                    AddressList(value, pointer, cc, errors);
                    break;
                case "bcc":
                    AddressList(value, pointer, bcc, errors);
                    break;
                case "replyTo":
                    AddressList(value, pointer, replyTo, errors);
                    break;
                case "subject":
                    subject = String(value, pointer, errors);
                    if (subject is not null && HasLineBreak(subject))
                    {
                        errors.Add(ProblemError.AtPointer(pointer, "must not contain CR, LF or NUL"));
                    }

                    break;
                case "text":
                    text = Text(value, pointer, errors, out textLength);
                    break;
                case "html":
                    html = Text(value, pointer, errors, out htmlLength);
                    break;
                case "headers":
                    Headers(value, pointer, headers, ref date, ref messageId, errors);
                    break;
                case "attachments":
                    Attachments(value, pointer, attachments, errors);
                    break;
                case "pool":
                    pool = String(value, pointer, errors);
                    if (pool is not null && !MailMesh.Smtp.PoolHeader.IsValidName(pool))
                    {
                        errors.Add(ProblemError.AtPointer(pointer, "a pool name is 1-64 letters, digits and . _ -"));
                    }

                    break;
                default:
                    errors.Add(ProblemError.AtPointer(pointer, $"unknown member '{Addresses.Shorten(name)}'"));
                    break;
            }
        }

        if (!sawFrom)
        {
            errors.Add(ProblemError.AtPointer("/from", "required: the author's address, e.g. \"Alerts <alerts@example.com>\""));
        }

        if (to.Count + cc.Count + bcc.Count == 0 && !errors.Any(e => e.Pointer is { } p && (p.StartsWith("/to", StringComparison.Ordinal) || p.StartsWith("/cc", StringComparison.Ordinal) || p.StartsWith("/bcc", StringComparison.Ordinal))))
        {
            errors.Add(ProblemError.AtPointer("/to", "at least one recipient is required (in to, cc or bcc)"));
        }

        if (text is null && html is null && attachments.Count == 0)
        {
            errors.Add(ProblemError.AtPointer("/text", "the message needs a body: text, html or attachments"));
        }

        if (errors.Count > 0 || from is null)
        {
            return null;
        }

        return new JsonSubmission
        {
            From = from.Value,
            EnvelopeFrom = envelopeFrom,
            To = to,
            Cc = cc,
            Bcc = bcc,
            ReplyTo = replyTo,
            Subject = subject,
            Text = text,
            Html = html,
            TextLength = textLength,
            HtmlLength = htmlLength,
            Headers = headers,
            Date = date,
            MessageId = messageId,
            Attachments = attachments,
            Pool = pool,
        };
    }

    private static string? String(JsonItem value, string pointer, List<ProblemError> errors)
    {
        if (value.ValueKind != JsonValueKind.String)
        {
            errors.Add(ProblemError.AtPointer(pointer, $"must be a string, not {Kind(value)}"));
            return null;
        }

        if (value.InvalidUnicode)
        {
            errors.Add(ProblemError.AtPointer(pointer, "is not valid Unicode (RFC 8259 §8.2)"));
        }
        else if (value.SmallString is null)
        {
            errors.Add(ProblemError.AtPointer(pointer, $"is longer than {JsonTree.SmallString} octets"));
        }

        return value.SmallString;
    }

    /// <summary>A text or html body: any length, left in the request body, checked to be valid Unicode.</summary>
    private static JsonText? Text(JsonItem value, string pointer, List<ProblemError> errors, out long length)
    {
        length = 0;
        if (value.ValueKind != JsonValueKind.String)
        {
            errors.Add(ProblemError.AtPointer(pointer, $"must be a string, not {Kind(value)}"));
            return null;
        }

        if (!value.Text.TryMeasureText(out length))
        {
            errors.Add(ProblemError.AtPointer(pointer, "is not valid Unicode (RFC 8259 §8.2)"));
            return null;
        }

        return value.Text;
    }

    /// <summary>A string (one address or a comma-separated list) or an array of strings.</summary>
    private static void AddressList(JsonItem value, string pointer, List<ParsedAddress> into, List<ProblemError> errors)
    {
        if (value.ValueKind == JsonValueKind.String)
        {
            if (String(value, pointer, errors) is { } list && !Addresses.TryParseList(list, into, out var error))
            {
                errors.Add(ProblemError.AtPointer(pointer, error));
            }

            return;
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            errors.Add(ProblemError.AtPointer(pointer, $"must be an array of addresses, not {Kind(value)}"));
            return;
        }

        var index = 0;
        foreach (var item in value.Items)
        {
            var itemPointer = pointer + "/" + index++;
            if (String(item, itemPointer, errors) is not { } text)
            {
                continue;
            }

            if (!Addresses.TryParseMailbox(text, out var address, out var error))
            {
                errors.Add(ProblemError.AtPointer(itemPointer, error));
            }
            else
            {
                into.Add(address);
            }
        }
    }

    private static void Headers(
        JsonItem value,
        string pointer,
        List<KeyValuePair<string, string>> into,
        ref DateTimeOffset? date,
        ref string? messageId,
        List<ProblemError> errors)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            errors.Add(ProblemError.AtPointer(pointer, $"must be an object of header names to values, not {Kind(value)}"));
            return;
        }

        foreach (var (name, headerValue) in value.Members)
        {
            var headerPointer = pointer + "/" + EscapePointer(name);
            if (!IsFieldName(name))
            {
                // RFC 5322 §3.6.8: field-name = 1*ftext, printable US-ASCII except ":".
                errors.Add(ProblemError.AtPointer(headerPointer, $"'{Addresses.Shorten(name)}' is not a header field name (RFC 5322 §3.6.8: printable ASCII, no colon or space)"));
                continue;
            }

            if ((ReservedHeaders.GetValueOrDefault(name) ?? ReservedPrefix(name)) is { } reason)
            {
                errors.Add(ProblemError.AtPointer(headerPointer, $"{name} cannot be set: {reason}"));
                continue;
            }

            if (String(headerValue, headerPointer, errors) is not { } text)
            {
                continue;
            }

            if (HasLineBreak(text))
            {
                // Header injection: a CR or LF would end this field and start another.
                errors.Add(ProblemError.AtPointer(headerPointer, "must not contain CR, LF or NUL (the API folds long values itself)"));
                continue;
            }

            if (name.Length + 2 + text.Length > 16 * 1024)
            {
                errors.Add(ProblemError.AtPointer(headerPointer, "is longer than 16384 characters"));
                continue;
            }

            if (name.Equals("Date", StringComparison.OrdinalIgnoreCase))
            {
                if (DateUtils.TryParse(text, out var parsed))
                {
                    date = parsed;
                }
                else
                {
                    errors.Add(ProblemError.AtPointer(headerPointer, $"'{Addresses.Shorten(text)}' is not an RFC 5322 §3.3 date-time, e.g. \"Tue, 1 Jul 2025 10:00:00 +0000\""));
                }

                continue;
            }

            if (name.Equals("Message-ID", StringComparison.OrdinalIgnoreCase))
            {
                if (TryParseMessageId(text, out var id))
                {
                    messageId = id;
                }
                else
                {
                    errors.Add(ProblemError.AtPointer(headerPointer, $"'{Addresses.Shorten(text)}' is not an RFC 5322 §3.6.4 msg-id, e.g. \"<unique@example.com>\""));
                }

                continue;
            }

            into.Add(new(name, text));
        }
    }

    private static void Attachments(JsonItem value, string pointer, List<JsonAttachment> into, List<ProblemError> errors)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            errors.Add(ProblemError.AtPointer(pointer, $"must be an array of attachments, not {Kind(value)}"));
            return;
        }

        var index = 0;
        foreach (var item in value.Items)
        {
            var itemPointer = pointer + "/" + index++;
            if (item.ValueKind != JsonValueKind.Object)
            {
                errors.Add(ProblemError.AtPointer(itemPointer, $"must be an object with filename, contentType and content, not {Kind(item)}"));
                continue;
            }

            string? fileName = null, contentId = null;
            JsonText? content = null;
            var contentType = new ContentType("application", "octet-stream");
            var valid = true;
            foreach (var (memberName, memberValue) in item.Members)
            {
                var memberPointer = itemPointer + "/" + EscapePointer(memberName);
                if (memberValue.ValueKind == JsonValueKind.Null)
                {
                    continue;
                }

                if (memberName == "content" && memberValue.ValueKind == JsonValueKind.String)
                {
                    // Any length: left in the body, decoded while the message is composed.
                    content = memberValue.Text;
                    continue;
                }

                var text = String(memberValue, memberPointer, errors);
                if (text is null)
                {
                    valid = false;
                    continue;
                }

                switch (memberName)
                {
                    case "filename":
                        fileName = text;
                        if (text.Length == 0 || HasLineBreak(text) || text.IndexOfAny(['/', '\\']) >= 0)
                        {
                            errors.Add(ProblemError.AtPointer(memberPointer, "must be a file name without a path, CR or LF"));
                            valid = false;
                        }

                        break;
                    case "contentType":
                        if (!ContentType.TryParse(text, out var parsed) || parsed.MediaType.Length == 0 || parsed.MediaSubtype.Length == 0
                            || parsed.IsMimeType("multipart", "*") || parsed.IsMimeType("message", "*"))
                        {
                            errors.Add(ProblemError.AtPointer(memberPointer, $"'{Addresses.Shorten(text)}' is not a media type for an attachment (RFC 2045 §5.1, e.g. \"application/pdf\"; not multipart/* or message/*)"));
                            valid = false;
                        }
                        else
                        {
                            contentType = parsed;
                        }

                        break;
                    case "contentId":
                        if (text.Length == 0 || HasLineBreak(text) || text.Any(c => c is '<' or '>' or ' ') || !System.Text.Ascii.IsValid(text))
                        {
                            errors.Add(ProblemError.AtPointer(memberPointer, "must be an ASCII id without spaces or angle brackets (referenced as cid:id, RFC 2392)"));
                            valid = false;
                        }

                        contentId = text;
                        break;
                    default:
                        errors.Add(ProblemError.AtPointer(memberPointer, $"unknown member '{Addresses.Shorten(memberName)}'"));
                        valid = false;
                        break;
                }
            }

            if (fileName is null)
            {
                errors.Add(ProblemError.AtPointer(itemPointer + "/filename", "required"));
                valid = false;
            }

            long length = 0;
            if (content is null)
            {
                errors.Add(ProblemError.AtPointer(itemPointer + "/content", "required: the attachment's bytes in base64"));
                valid = false;
            }
            else if (!content.Value.TryMeasureBase64(out length))
            {
                errors.Add(ProblemError.AtPointer(itemPointer + "/content", "is not valid base64 (RFC 4648 §4)"));
                valid = false;
            }

            if (valid)
            {
                into.Add(new JsonAttachment(fileName!, contentType, content!.Value, length, contentId));
            }
        }
    }

    /// <summary>RFC 5322 §3.6.4 msg-id: "&lt;" id-left "@" id-right "&gt;", printable ASCII without spaces.</summary>
    private static bool TryParseMessageId(string text, out string id)
    {
        var trimmed = text.Trim();
        id = string.Empty;
        if (trimmed.Length < 5 || trimmed[0] != '<' || trimmed[^1] != '>')
        {
            return false;
        }

        var inner = trimmed[1..^1];
        var at = inner.LastIndexOf('@');
        if (at <= 0 || at == inner.Length - 1 || inner.Any(c => c is <= ' ' or >= (char)127 or '<' or '>'))
        {
            return false;
        }

        id = inner;
        return true;
    }

    private static bool IsFieldName(string name) =>
        name.Length is > 0 and <= 76 && name.All(c => c is > ' ' and < (char)127 and not ':');

    private static string? ReservedPrefix(string name) =>
        name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase) ? "the MIME structure is built from text, html and attachments"
        : name.StartsWith("Resent-", StringComparison.OrdinalIgnoreCase) ? "resent blocks (RFC 5322 §3.6.6) are for re-sending a raw message"
        : name.StartsWith("X-MailMesh-", StringComparison.OrdinalIgnoreCase) ? "X-MailMesh- fields are reserved for MailMesh"
        : null;

    private static bool HasLineBreak(string text) => text.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0;

    private static string Kind(JsonItem value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    /// <summary>RFC 6901 §3: "~" is written "~0" and "/" is written "~1".</summary>
    private static string EscapePointer(string name) => name.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);
}
