using System.Buffers;
using System.Text;
using MailMesh.Mailbox.Imap;

namespace MailMesh.Mailbox.Tests.Imap;

/// <summary>ENVELOPE, BODYSTRUCTURE and BODY[section] from MimeKit's parse, byte-exact against the stored message.</summary>
public sealed class MessageStructureTests
{
    private const string Message =
        "From: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>\r\nTo: alice@test.example, Carol <carol@example.net>\r\n" +
        "Subject: Report\r\nDate: Tue, 01 Dec 2026 09:30:00 +0100\r\nMessage-ID: <report@example.org>\r\nMIME-Version: 1.0\r\n" +
        "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
        "The report is attached.\r\nSecond line.\r\n--outer\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\n" +
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.org\r\nSubject: Inner\r\n\r\n" +
        "inner body\r\n--outer--\r\n";

    private static readonly byte[] Bytes = Encoding.ASCII.GetBytes(Message);

    private static string Section(string fetch)
    {
        Assert.True(ImapParser.TryParse(Encoding.ASCII.GetBytes("a FETCH 1 " + fetch + "\r\n"), out var command, out _, out var error), error);
        var item = command!.FetchItems![0];
        using var stream = new MemoryStream(Bytes);
        var structure = MessageStructure.Parse(stream);
        if (!structure.TryResolve(item, out var start, out var length, out var generated))
        {
            return "<none>";
        }

        return generated is not null ? Encoding.ASCII.GetString(generated) : Message.Substring((int)start, (int)length);
    }

    [Theory]
    [InlineData("BODY[1]", "The report is attached.\r\nSecond line.")]
    [InlineData("BODY[1.MIME]", "Content-Type: text/plain; charset=utf-8\r\n\r\n")]
    [InlineData("BODY[2]", "JVBERi0xLjQK")]
    [InlineData("BODY[3.HEADER]", "From: inner@example.org\r\nSubject: Inner\r\n\r\n")]
    [InlineData("BODY[3.TEXT]", "inner body")]
    [InlineData("BODY[3.1]", "inner body")]
    [InlineData("BODY[4]", "<none>")]
    [InlineData("BODY[1.HEADER]", "<none>")]
    [InlineData("BODY[HEADER.FIELDS (subject to)]", "To: alice@test.example, Carol <carol@example.net>\r\nSubject: Report\r\n\r\n")]
    public void Sections_are_the_stored_bytes(string fetch, string expected) => Assert.Equal(expected, Section(fetch));

    [Fact]
    public void Whole_header_and_text()
    {
        var header = Section("BODY[HEADER]");
        Assert.EndsWith("boundary=\"outer\"\r\n\r\n", header, StringComparison.Ordinal);
        Assert.Equal(Message, header + Section("BODY[TEXT]"));
    }

    [Fact]
    public void ENVELOPE_and_BODYSTRUCTURE()
    {
        using var stream = new MemoryStream(Bytes);
        var structure = MessageStructure.Parse(stream);
        var buffer = new ArrayBufferWriter<byte>();
        structure.WriteEnvelope(new ImapWriter(buffer));
        Assert.Equal(
            "(\"Tue, 01 Dec 2026 09:30:00 +0100\" \"Report\" ((\"=?utf-8?b?SsO2cmc=?=\" NIL \"jorg\" \"example.org\")) ((\"=?utf-8?b?SsO2cmc=?=\" NIL \"jorg\" \"example.org\")) " +
            "((\"=?utf-8?b?SsO2cmc=?=\" NIL \"jorg\" \"example.org\")) ((NIL NIL \"alice\" \"test.example\")(\"Carol\" NIL \"carol\" \"example.net\")) NIL NIL NIL \"<report@example.org>\")",
            Encoding.ASCII.GetString(buffer.WrittenSpan));
        buffer.Clear();
        structure.WriteBodyStructure(new ImapWriter(buffer), extensible: false);
        var body = Encoding.ASCII.GetString(buffer.WrittenSpan);
        Assert.StartsWith("((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 37 2)(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") NIL NIL \"BASE64\" 12)(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" ", body, StringComparison.Ordinal);
        Assert.EndsWith(" \"MIXED\")", body, StringComparison.Ordinal);
    }

    [Fact]
    public void A_message_MimeKit_cannot_read_is_a_headerless_text_body()
    {
        // Found by the seeded fuzzer: MimeKit throws FormatException when there is no header at all.
        var bytes = Encoding.ASCII.GetBytes("\u0001garbage without a header\r\nsecond\r\n");
        using var stream = new MemoryStream(bytes);
        var structure = MessageStructure.Parse(stream);
        var buffer = new ArrayBufferWriter<byte>();
        structure.WriteBodyStructure(new ImapWriter(buffer), extensible: false);
        Assert.Equal("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" " + bytes.Length + " 2)", Encoding.ASCII.GetString(buffer.WrittenSpan));
        Assert.True(ImapParser.TryParse("a FETCH 1 BODY[1]\r\n"u8, out var command, out _, out _));
        Assert.True(structure.TryResolve(command!.FetchItems![0], out var start, out var length, out _));
        Assert.Equal((0L, (long)bytes.Length), (start, length));
    }

    [Fact]
    public void Writer_quotes_what_it_can_and_sends_literals_otherwise()
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new ImapWriter(buffer);
        w.String("a \"b\" \\c").Sp().String("line\r\nbreak").Sp().String("Jörg").Sp().AString("INBOX").Sp().AString("with space").Sp().NString(null);
        Assert.Equal("\"a \\\"b\\\" \\\\c\" {11}\r\nline\r\nbreak {5}\r\nJörg INBOX \"with space\" NIL", Encoding.UTF8.GetString(buffer.WrittenSpan));
    }
}
