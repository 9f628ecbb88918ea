using System.Buffers;
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
}
