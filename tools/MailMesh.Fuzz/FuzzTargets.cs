using System.Buffers;
using MailMesh.Mailbox.Imap;
using MailMesh.Smtp;

namespace MailMesh.Fuzz;

/// <summary>
/// The fuzz targets. Each takes arbitrary bytes and must finish without an exception: every outcome the parsers
/// document (a command or a syntax reply, content or a refusal) is fine; anything thrown is a finding.
/// </summary>
internal static class FuzzTargets
{
    private const int MaxMessageSize = 64 * 1024;

    /// <summary>The first byte selects the target; the rest is its input.</summary>
    public static void Run(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
        {
            return;
        }

        var payload = input[1..];

        // 0xF0-0xFF select the IMAP targets; below, the SMTP ones as before.
        if (input[0] >= 0xF0)
        {
            if (input[0] < 0xF8)
            {
                ImapCommands(payload);
            }
            else
            {
                MimeStructure(payload);
            }

            return;
        }

        switch (input[0] % 3)
        {
            case 0:
                Commands(payload, allowUtf8: (input[0] & 0x80) != 0);
                break;
            case 1:
                Data(payload);
                break;
            default:
                Mailboxes(payload);
                break;
        }
    }

    /// <summary>CRLF-separated command lines through the line reader, the command parser and the parameter interpreters.</summary>
    public static void Commands(ReadOnlySpan<byte> input, bool allowUtf8)
    {
        var lines = new SmtpLineReader(512);
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(input.ToArray()));
        while (lines.TryReadLine(ref reader, out var line) is var status && status != LineStatus.NeedMore)
        {
            if (status != LineStatus.Line)
            {
                continue;
            }

            if (!SmtpCommandParser.TryParse(line, allowUtf8, out var command, out _))
            {
                continue;
            }

            switch (command.Kind)
            {
                case SmtpCommandKind.Mail:
                    Check(MailParameters.TryParse(command.Parameters, out var mail, out var mailError), mail, mailError);
                    break;
                case SmtpCommandKind.Rcpt:
                    Check(RcptParameters.TryParse(command.Parameters, out var rcpt, out var rcptError), rcpt, rcptError);
                    break;
            }
        }
    }

    // The documented contract: a result on success, a 5xx reply otherwise.
    private static void Check(bool ok, object? result, SmtpReply? error)
    {
        if (ok ? result is null : error is not { Code: >= 500 and <= 599 })
        {
            throw new InvalidOperationException("A parameter interpreter broke its contract.");
        }
    }

    /// <summary>Message content through the DATA reader (dot-unstuffing, line and size limits).</summary>
    public static void Data(ReadOnlySpan<byte> input)
    {
        var data = new SmtpDataReader(MaxMessageSize, 1000);
        data.Reset();
        var output = new ArrayBufferWriter<byte>();
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(input.ToArray()));
        data.TryRead(ref reader, output);
        if (output.WrittenCount > MaxMessageSize + 1000)
        {
            throw new InvalidOperationException("The DATA reader kept more than the size limit.");
        }
    }

    /// <summary>Paths as MAIL/RCPT carry them, and xtext.</summary>
    public static void Mailboxes(ReadOnlySpan<byte> input)
    {
        MailboxParser.ParsePath(input, allowNull: true, allowUtf8: true, out _, out _, out _);
        MailboxParser.ParsePath(input, allowNull: false, allowUtf8: false, out _, out _, out _);
        Xtext.TryDecode(System.Text.Encoding.Latin1.GetString(input), out _);
    }

    /// <summary>
    /// IMAP commands through the framing reader (small limits, so they are hit) and the parser; streamed literals are
    /// skipped as the session would. The reader must never keep more than its command limit.
    /// </summary>
    public static void ImapCommands(ReadOnlySpan<byte> input)
    {
        var limits = new ImapLimits(MaxLineLength: 256, MaxCommandSize: 1024, MaxInlineLiteral: 128, MaxMessageSize: 4096);
        var reader = new ImapCommandReader(limits);
        var sequence = new SequenceReader<byte>(new ReadOnlySequence<byte>(input.ToArray()));
        while (true)
        {
            var status = reader.TryRead(ref sequence);
            if (reader.Command.Length > limits.MaxCommandSize + 1)
            {
                throw new InvalidOperationException("The IMAP reader kept more than its command limit.");
            }

            switch (status)
            {
                case ImapReadStatus.NeedMore:
                    return;
                case ImapReadStatus.Command:
                    // The documented contract: a command, or a reason for the BAD.
                    if (ImapParser.TryParse(reader.Command.Span, out var command, out _, out var error) ? command is null : error.Length == 0)
                    {
                        throw new InvalidOperationException("The IMAP parser broke its contract.");
                    }

                    reader.Reset();
                    break;
                case ImapReadStatus.StreamLiteral:
                    sequence.Advance(Math.Min(reader.StreamLength, sequence.Remaining));
                    reader.StreamDone();
                    break;
            }
        }
    }

    /// <summary>A message through MimeKit and the IMAP structure: ENVELOPE, BODYSTRUCTURE and every section of the first parts.</summary>
    public static void MimeStructure(ReadOnlySpan<byte> input)
    {
        using var stream = new MemoryStream(input.ToArray());
        var structure = MessageStructure.Parse(stream);
        var output = new ArrayBufferWriter<byte>();
        var writer = new ImapWriter(output);
        structure.WriteEnvelope(writer);
        structure.WriteBodyStructure(writer, extensible: true);
        foreach (var fetch in new[] { "BODY[]", "BODY[1]", "BODY[1.MIME]", "BODY[2.1]", "BODY[1.HEADER]", "BODY[TEXT]", "BODY[HEADER.FIELDS (SUBJECT)]" })
        {
            if (!ImapParser.TryParse(System.Text.Encoding.ASCII.GetBytes("a FETCH 1 " + fetch + "\r\n"), out var command, out _, out _))
            {
                throw new InvalidOperationException("A fixed FETCH does not parse.");
            }

            if (structure.TryResolve(command!.FetchItems![0], out var start, out var length, out var generated)
                && generated is null && (start < 0 || length < 0 || start + length > stream.Length))
            {
                throw new InvalidOperationException("A section lies outside the message.");
            }
        }
    }
}
