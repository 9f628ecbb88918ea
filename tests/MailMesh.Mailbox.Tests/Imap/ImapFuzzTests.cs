using System.Buffers;
using System.Text;
using MailMesh.Mailbox.Imap;
using MailMesh.Testing.Fuzzing;

namespace MailMesh.Mailbox.Tests.Imap;

/// <summary>
/// Seeded (deterministic) fuzzing of IMAP framing and parsing and of the MIME structure: mutated transcripts must end
/// in a command or a BAD reason, never an exception, and never more memory than the limits.
/// </summary>
public sealed class ImapFuzzTests
{
    private const int Seed = 20261202;

    private static readonly string[] Corpus =
    [
        "a1 LOGIN {5}\r\nalice {3+}\r\npwd\r\n", "a2 UID FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (SUBJECT)]<0.10>)\r\n",
        "a3 SEARCH RETURN (MIN) OR (FROM \"x\" SINCE 1-Jan-2020) NOT 1:3\r\n", "a4 STORE 1 +FLAGS.SILENT (\\Seen $x)\r\n",
        "a5 APPEND INBOX (\\Seen) \"02-Dec-2026 03:46:27 +0000\" {300}\r\n" + new string('m', 300) + "\r\n",
        "a6 LIST (SPECIAL-USE) \"\" (\"*\" %) RETURN (SUBSCRIBED)\r\n", "a7 ID (\"name\" NIL)\r\n", "a8 AUTHENTICATE PLAIN =\r\n",
    ];

    private static readonly byte[] Interesting = [0, (byte)'\r', (byte)'\n', (byte)'{', (byte)'}', (byte)'+', (byte)'(', (byte)')', (byte)'[', (byte)']', (byte)'<', (byte)'>', (byte)'"', (byte)'\\', (byte)' ', (byte)'*', (byte)':', (byte)',', (byte)'9', 0x80, 0xC3, 0xFF];

    [Fact]
    public void Mutated_commands_end_in_a_command_or_a_reason()
    {
        var random = new Random(Seed);
        var mutator = Mutator(random);
        var limits = new ImapLimits(256, 1024, 128, 4096);
        for (var i = 0; i < 20_000; i++)
        {
            var input = mutator.Mutate(Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, random.Next(1, 4)).Select(_ => Corpus[random.Next(Corpus.Length)]))));
            var reader = new ImapCommandReader(limits);
            var sequence = new SequenceReader<byte>(new ReadOnlySequence<byte>(input));
            while (reader.TryRead(ref sequence) is var status && status != ImapReadStatus.NeedMore)
            {
                Assert.True(reader.Command.Length <= limits.MaxCommandSize + 1);
                if (status == ImapReadStatus.Command)
                {
                    var ok = ImapParser.TryParse(reader.Command.Span, out var command, out _, out var error);
                    Assert.True(ok ? command is not null : error.Length > 0);
                    reader.Reset();
                }
                else if (status == ImapReadStatus.StreamLiteral)
                {
                    sequence.Advance(Math.Min(reader.StreamLength, sequence.Remaining));
                    reader.StreamDone();
                }
            }
        }
    }

    [Fact]
    public void Mutated_messages_have_a_structure_inside_their_bytes()
    {
        var mutator = Mutator(new Random(Seed));
        var message = Encoding.ASCII.GetBytes(
            "From: a@b.example\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\n" +
            "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ny\r\n--b--\r\n");
        for (var i = 0; i < 2_000; i++)
        {
            var input = mutator.Mutate(message);
            using var stream = new MemoryStream(input);
            var structure = MessageStructure.Parse(stream);
            var output = new ArrayBufferWriter<byte>();
            structure.WriteEnvelope(new ImapWriter(output));
            structure.WriteBodyStructure(new ImapWriter(output), extensible: true);
            foreach (var fetch in new[] { "BODY[1]", "BODY[2.HEADER]", "BODY[2.1]", "BODY[1.MIME]", "BODY[TEXT]" })
            {
                Assert.True(ImapParser.TryParse(Encoding.ASCII.GetBytes("a FETCH 1 " + fetch + "\r\n"), out var command, out _, out _));
                if (structure.TryResolve(command!.FetchItems![0], out var start, out var length, out var generated) && generated is null)
                {
                    Assert.InRange(start, 0, input.Length);
                    Assert.InRange(start + length, start, input.Length);
                }
            }
        }
    }

    /// <summary>The shared mutator with IMAP's fragment: literal announcements, synchronizing or not (LITERAL-).</summary>
    private static InputMutator Mutator(Random random) => new(random, Interesting)
    {
        MaxMutations = 5,
        MaxRun = 400,
        Fragment = r => Encoding.ASCII.GetBytes("{" + r.Next(0, 6000) + (r.Next(2) == 0 ? "+" : string.Empty) + "}\r\n"),
    };
}
