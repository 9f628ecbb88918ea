using System.Buffers;
using System.Text;
using MailMesh.Testing.Fuzzing;

namespace MailMesh.Smtp.Tests;

/// <summary>
/// Seeded (deterministic) fuzzing of the protocol parsers: 100 000 mutated command lines and DATA streams. Every input
/// must end in a documented result -- a command or a syntax reply, content or a refusal -- never an exception, and
/// never more memory than the configured limits.
/// </summary>
public sealed class ParserFuzzTests
{
    private const int Seed = 20261128;

    private static readonly string[] Corpus =
    [
        "EHLO client.example", "HELO [192.0.2.1]", "MAIL FROM:<a@example.com> SIZE=1000 BODY=8BITMIME",
        "MAIL FROM:<> RET=HDRS ENVID=QQ+2B1", "MAIL FROM:<jörg@bücher.example> SMTPUTF8 REQUIRETLS AUTH=<>",
        "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+40example.org", "RCPT TO:<Postmaster>",
        "RCPT TO:<\"quoted@local\"@example.org>", "RCPT TO:<@a,@b:user@example.org>", "RCPT TO:<user@[IPv6:2001:db8::1]>",
        "DATA", "BDAT 100 LAST", "RSET", "NOOP", "QUIT", "VRFY user", "EXPN list", "HELP", "STARTTLS", "AUTH PLAIN AGEAYg==",
    ];

    private static readonly byte[] Interesting = [0, (byte)'\r', (byte)'\n', (byte)'.', (byte)'<', (byte)'>', (byte)'@', (byte)'"', (byte)'\\', (byte)'=', (byte)'+', (byte)',', (byte)';', (byte)':', (byte)' ', 0x7F, 0x80, 0xC3, 0xBC, 0xFF, 0xE4];

    /// <summary>The shared mutator with SMTP's fragments: commands of the corpus spliced in, tails cut off.</summary>
    private static InputMutator Mutator(Random random) => new(random, Interesting)
    {
        MaxMutations = 7,
        MaxRun = 700,
        Fragment = r => Encoding.UTF8.GetBytes(Corpus[r.Next(Corpus.Length)]),
        Truncates = true,
    };

    /// <summary>One command line through the parser and the parameter interpreters; returns whether it parsed.</summary>
    internal static bool FuzzCommand(ReadOnlySpan<byte> line, bool allowUtf8)
    {
        if (!SmtpCommandParser.TryParse(line, allowUtf8, out var command, out var error))
        {
            Assert.NotNull(error);
            Assert.InRange(error.Code, 500, 599);
            return false;
        }

        Assert.NotNull(command);
        if (command.Kind == SmtpCommandKind.Mail)
        {
            Assert.True(MailParameters.TryParse(command.Parameters, out var p, out var e) ? p is not null : e!.Code is 501 or 555);
            Assert.True(command.IsNullPath || command.Mailbox is not null);
        }
        else if (command.Kind == SmtpCommandKind.Rcpt)
        {
            Assert.True(RcptParameters.TryParse(command.Parameters, out var p, out var e) ? p is not null : e!.Code is 501 or 555);
            Assert.True(command.IsPostmaster || command.Mailbox is not null);
            if (command.Mailbox is { } mailbox)
            {
                // The routed form is ASCII-compatible in the domain (A-label) whatever the client wrote.
                Assert.True(mailbox.IsAddressLiteral || System.Text.Ascii.IsValid(mailbox.NormalizedDomain));
            }
        }

        return true;
    }

    [Fact]
    public void Mutated_command_lines_end_in_a_command_or_a_syntax_reply()
    {
        var random = new Random(Seed);
        var mutator = Mutator(random);
        var parsed = 0;
        for (var i = 0; i < 90_000; i++)
        {
            var line = mutator.Mutate(Encoding.UTF8.GetBytes(Corpus[random.Next(Corpus.Length)]));
            if (FuzzCommand(line, allowUtf8: random.Next(2) == 0))
            {
                parsed++;
            }

            // Through the line reader as the session does, in random pieces.
            var reader = new SmtpLineReader(512);
            var stream = line.Concat("\r\n"u8.ToArray()).ToArray();
            var sequence = new ReadOnlySequence<byte>(stream);
            var sequenceReader = new SequenceReader<byte>(sequence);
            while (true)
            {
                var status = reader.TryReadLine(ref sequenceReader, out var read);
                if (status == LineStatus.NeedMore)
                {
                    break;
                }

                Assert.True(read.Length <= 512);
            }
        }

        // The mutations keep a fair share of valid commands, so the deeper paths were exercised too.
        Assert.InRange(parsed, 5_000, 85_000);
    }

    [Fact]
    public void Mutated_DATA_streams_end_in_content_or_a_refusal_within_the_size_limit()
    {
        var random = new Random(Seed);
        var mutator = Mutator(random);
        const int MaxSize = 4096;
        var data = new SmtpDataReader(MaxSize, 1000);
        for (var i = 0; i < 10_000; i++)
        {
            var seed = Encoding.ASCII.GetBytes("Subject: fuzz\r\n\r\nline one\r\n..dot\r\n" + new string('x', random.Next(0, 2000)) + "\r\n.\r\nQUIT\r\n");
            var stream = mutator.Mutate(seed);
            data.Reset();
            var output = new ArrayBufferWriter<byte>();
            var offset = 0;
            var done = false;
            var carry = Array.Empty<byte>();
            while (offset < stream.Length && !done)
            {
                var take = Math.Min(stream.Length - offset, random.Next(1, 600));
                var chunk = carry.Concat(stream.Skip(offset).Take(take)).ToArray();
                offset += take;
                var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(chunk));
                done = data.TryRead(ref reader, output);
                carry = chunk[(int)reader.Consumed..];
                Assert.True(carry.Length <= 2 * 600 + 8, "the reader must consume what it can, holding back only a few octets");
            }

            // Bounded memory: never more than the limit (plus one line) is kept, whatever the input.
            Assert.True(output.WrittenCount <= MaxSize + 1000);
            if (done && data.Error is { } error)
            {
                Assert.InRange(error.Code, 500, 599);
            }
        }
    }
}
