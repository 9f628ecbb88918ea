using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace MailMesh.Smtp;

/// <summary>Parses one command line (without CRLF) into an <see cref="SmtpCommand"/> or the syntax-error reply to give.</summary>
public static class SmtpCommandParser
{
    /// <summary>The longest line this parser copies to the stack; the line reader's limit keeps lines far below it.</summary>
    private const int StackLimit = 1024;

    public static bool TryParse(in ReadOnlySequence<byte> line, [NotNullWhen(true)] out SmtpCommand? command, [NotNullWhen(false)] out SmtpReply? error) =>
        TryParse(line, allowUtf8: false, out command, out error);

    /// <summary>
    /// Parses one command line. <paramref name="allowUtf8"/> is true once SMTPUTF8 is offered (RFC 6531 §3.3): UTF-8 is
    /// then admitted in MAIL and RCPT paths (the session decides whether the transaction may use it).
    /// </summary>
    public static bool TryParse(in ReadOnlySequence<byte> line, bool allowUtf8, [NotNullWhen(true)] out SmtpCommand? command, [NotNullWhen(false)] out SmtpReply? error)
    {
        if (line.IsSingleSegment)
        {
            return TryParse(line.FirstSpan, allowUtf8, out command, out error);
        }

        var length = checked((int)line.Length);
        var rented = length > StackLimit ? ArrayPool<byte>.Shared.Rent(length) : null;
        try
        {
            Span<byte> buffer = rented is null ? stackalloc byte[StackLimit] : rented;
            line.CopyTo(buffer);
            return TryParse(buffer[..length], allowUtf8, out command, out error);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    public static bool TryParse(ReadOnlySpan<byte> line, [NotNullWhen(true)] out SmtpCommand? command, [NotNullWhen(false)] out SmtpReply? error) =>
        TryParse(line, allowUtf8: false, out command, out error);

    /// <inheritdoc cref="TryParse(in ReadOnlySequence{byte}, bool, out SmtpCommand?, out SmtpReply?)"/>
    public static bool TryParse(ReadOnlySpan<byte> line, bool allowUtf8, [NotNullWhen(true)] out SmtpCommand? command, [NotNullWhen(false)] out SmtpReply? error)
    {
        command = null;
        error = null;

        // RFC 3030 §2: the octets after a BDAT line are a chunk of exactly chunk-size octets, never commands. A BDAT
        // line that is not exactly bdat-cmd leaves the length unknown, so it fails with SyntaxBdat (whatever else is
        // wrong with it) and the caller must close the session: reading on would take chunk data as commands.
        if (IsBdatVerb(line))
        {
            return TryParseBdat(line[4..], out command, out error);
        }

        // RFC 5321 §2.3.1 / §4.1.2: commands are US-ASCII; HTAB is tolerated, other controls are not. RFC 6531 §3.3:
        // with SMTPUTF8 offered, MAIL and RCPT may carry UTF-8 (well-formed: checked here).
        var eightBit = false;
        foreach (var b in line)
        {
            if (b is 127 or (< 32 and not (byte)'\t'))
            {
                error = SmtpReplies.BadCharacters;
                return false;
            }

            eightBit |= b > 127;
        }

        if (eightBit && (!allowUtf8 || !System.Text.Unicode.Utf8.IsValid(line)))
        {
            error = SmtpReplies.BadCharacters;
            return false;
        }

        var space = line.IndexOf((byte)' ');
        var verb = space < 0 ? line : line[..space];
        var rest = space < 0 ? [] : line[(space + 1)..];
        if (!TryGetKind(verb, out var kind))
        {
            error = SmtpReplies.UnknownCommand;
            return false;
        }

        if (eightBit && kind is not (SmtpCommandKind.Mail or SmtpCommandKind.Rcpt))
        {
            error = SmtpReplies.BadCharacters;
            return false;
        }

        var argument = Encoding.UTF8.GetString(rest.Trim((byte)' '));
        switch (kind)
        {
            case SmtpCommandKind.Helo:
            case SmtpCommandKind.Ehlo:
                {
                    // RFC 5321 §4.1.1.1: EHLO SP ( Domain / address-literal ). Real clients send names that break the
                    // grammar (underscores, bare IPs); like Postfix, accept any single token and let policy judge it.
                    var name = argument.Split(' ', 2)[0];
                    if (name.Length == 0)
                    {
                        error = kind == SmtpCommandKind.Helo ? SmtpReplies.SyntaxHelo : SmtpReplies.SyntaxEhlo;
                        return false;
                    }

                    command = new SmtpCommand(kind, argument) { ClientName = name };
                    return true;
                }

            case SmtpCommandKind.Mail:
                return TryParseMailOrRcpt(kind, rest, "FROM:"u8, argument, eightBit, out command, out error);
            case SmtpCommandKind.Rcpt:
                return TryParseMailOrRcpt(kind, rest, "TO:"u8, argument, eightBit, out command, out error);
            case SmtpCommandKind.Data:
            case SmtpCommandKind.Rset:
            case SmtpCommandKind.Quit:
            case SmtpCommandKind.StartTls:
                if (argument.Length != 0)
                {
                    error = SmtpReplies.SyntaxNoArguments;
                    return false;
                }

                break;
            case SmtpCommandKind.Vrfy:
            case SmtpCommandKind.Expn:
                if (argument.Length == 0)
                {
                    error = SmtpReplies.SyntaxVrfy;
                    return false;
                }

                break;
        }

        command = new SmtpCommand(kind, argument);
        return true;
    }

    /// <summary>True when the line's verb is BDAT (the line is "BDAT", or starts with "BDAT" and a space or TAB).</summary>
    public static bool IsBdatVerb(ReadOnlySpan<byte> line) =>
        line.Length >= 4 && Ascii.EqualsIgnoreCase(line[..4], "BDAT"u8) && (line.Length == 4 || line[4] is (byte)' ' or (byte)'\t');

    /// <summary>
    /// RFC 3030 §2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CRLF; chunk-size = 1*DIGIT; end-marker = "LAST".
    /// Spaces between the parts are tolerated (as Postfix does); anything else, or a size beyond 18 digits, is
    /// <see cref="SmtpReplies.SyntaxBdat"/>.
    /// </summary>
    private static bool TryParseBdat(ReadOnlySpan<byte> rest, out SmtpCommand? command, out SmtpReply? error)
    {
        command = null;
        error = SmtpReplies.SyntaxBdat;
        rest = rest.Trim((byte)' ');
        var space = rest.IndexOf((byte)' ');
        var size = space < 0 ? rest : rest[..space];
        var marker = space < 0 ? [] : rest[(space + 1)..].TrimStart((byte)' ');
        if (size.Length is 0 or > 18 || size.ContainsAnyExceptInRange((byte)'0', (byte)'9'))
        {
            return false;
        }

        if (marker.Length != 0 && !Ascii.EqualsIgnoreCase(marker, "LAST"u8))
        {
            return false;
        }

        var chunkSize = 0L;
        foreach (var digit in size)
        {
            chunkSize = (chunkSize * 10) + (digit - '0');
        }

        error = null;
        command = new SmtpCommand(SmtpCommandKind.Bdat, Encoding.ASCII.GetString(rest)) { ChunkSize = chunkSize, IsLastChunk = marker.Length != 0 };
        return true;
    }

    private static bool TryParseMailOrRcpt(SmtpCommandKind kind, ReadOnlySpan<byte> rest, ReadOnlySpan<byte> prefix, string argument, bool utf8, out SmtpCommand? command, out SmtpReply? error)
    {
        command = null;
        var isMail = kind == SmtpCommandKind.Mail;
        var syntax = isMail ? SmtpReplies.SyntaxMail : SmtpReplies.SyntaxRcpt;
        if (rest.Length < prefix.Length || !Ascii.EqualsIgnoreCase(rest[..prefix.Length], prefix))
        {
            error = syntax;
            return false;
        }

        // RFC 5321 §3.3 puts no space after the colon, but many clients send one (Postfix accepts it too).
        var pathText = rest[prefix.Length..].TrimStart((byte)' ');
        var result = MailboxParser.ParsePath(pathText, allowNull: isMail, allowUtf8: utf8, out var mailbox, out var consumed, out var isPostmaster);
        if (isMail && isPostmaster)
        {
            // <Postmaster> alone is a forward-path form only; as a sender it is a mailbox without a domain.
            result = PathError.Syntax;
        }

        if (result != PathError.None)
        {
            error = result switch
            {
                PathError.SourceRoute => isMail ? SmtpReplies.SenderSourceRoute : SmtpReplies.RecipientSourceRoute,
                PathError.TooLong => isMail ? SmtpReplies.SenderTooLong : SmtpReplies.RecipientTooLong,
                PathError.NullPath => SmtpReplies.NullRecipient,
                _ when consumed == 0 => syntax,
                _ => isMail ? SmtpReplies.BadSenderAddress : SmtpReplies.BadRecipientAddress,
            };
            return false;
        }

        var parametersText = pathText[consumed..];
        if (!parametersText.IsEmpty && parametersText[0] != ' ')
        {
            error = syntax;
            return false;
        }

        if (!TryParseParameters(parametersText, out var parameters))
        {
            error = SmtpReplies.SyntaxParameters;
            return false;
        }

        error = null;
        command = new SmtpCommand(kind, argument)
        {
            Mailbox = mailbox,
            IsNullPath = isMail && mailbox is null,
            IsPostmaster = isPostmaster,
            Parameters = parameters,
        };
        return true;
    }

    // RFC 5321 §4.1.2: Mail-parameters = esmtp-param *(SP esmtp-param); esmtp-keyword = (ALPHA / DIGIT)
    // *(ALPHA / DIGIT / "-"); esmtp-value = 1*(%d33-60 / %d62-126).
    private static bool TryParseParameters(ReadOnlySpan<byte> text, out IReadOnlyList<EsmtpParameter> parameters)
    {
        parameters = [];
        List<EsmtpParameter>? list = null;
        foreach (var range in text.Split((byte)' '))
        {
            var token = text[range];
            if (token.IsEmpty)
            {
                continue;
            }

            var equals = token.IndexOf((byte)'=');
            var keyword = equals < 0 ? token : token[..equals];
            if (keyword.IsEmpty || !char.IsAsciiLetterOrDigit((char)keyword[0]))
            {
                return false;
            }

            foreach (var c in keyword)
            {
                if (!char.IsAsciiLetterOrDigit((char)c) && c != '-')
                {
                    return false;
                }
            }

            string? value = null;
            if (equals >= 0)
            {
                var raw = token[(equals + 1)..];
                if (raw.IsEmpty || raw.IndexOfAnyExceptInRange((byte)33, (byte)126) >= 0 || raw.Contains((byte)'='))
                {
                    return false;
                }

                value = Encoding.ASCII.GetString(raw);
            }

            (list ??= []).Add(new EsmtpParameter(Encoding.ASCII.GetString(keyword).ToUpperInvariant(), value));
        }

        if (list is not null)
        {
            parameters = list;
        }

        return true;
    }

    private static bool TryGetKind(ReadOnlySpan<byte> verb, out SmtpCommandKind kind)
    {
        kind = default;
        if (verb.Length == 4)
        {
            Span<byte> upper = stackalloc byte[4];
            Ascii.ToUpper(verb, upper, out _);
            kind = upper switch
            {
                _ when upper.SequenceEqual("HELO"u8) => SmtpCommandKind.Helo,
                _ when upper.SequenceEqual("EHLO"u8) => SmtpCommandKind.Ehlo,
                _ when upper.SequenceEqual("MAIL"u8) => SmtpCommandKind.Mail,
                _ when upper.SequenceEqual("RCPT"u8) => SmtpCommandKind.Rcpt,
                _ when upper.SequenceEqual("DATA"u8) => SmtpCommandKind.Data,
                _ when upper.SequenceEqual("RSET"u8) => SmtpCommandKind.Rset,
                _ when upper.SequenceEqual("NOOP"u8) => SmtpCommandKind.Noop,
                _ when upper.SequenceEqual("QUIT"u8) => SmtpCommandKind.Quit,
                _ when upper.SequenceEqual("VRFY"u8) => SmtpCommandKind.Vrfy,
                _ when upper.SequenceEqual("EXPN"u8) => SmtpCommandKind.Expn,
                _ when upper.SequenceEqual("HELP"u8) => SmtpCommandKind.Help,
                _ when upper.SequenceEqual("AUTH"u8) => SmtpCommandKind.Auth,
                _ when upper.SequenceEqual("BDAT"u8) => SmtpCommandKind.Bdat,
                _ => (SmtpCommandKind)(-1),
            };
            return kind >= 0;
        }

        if (Ascii.EqualsIgnoreCase(verb, "STARTTLS"u8))
        {
            kind = SmtpCommandKind.StartTls;
            return true;
        }

        return false;
    }
}
