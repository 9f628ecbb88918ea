using System.Buffers;
using System.Text;
using MailMesh.Smtp.Client;

namespace MailMesh.Delivery.Tests;

public sealed class ServerReplyParserTests
{
    private static ServerReply ParseAll(string text)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(text)));
        Assert.True(new ServerReplyParser().TryParse(ref reader, out var reply));
        Assert.Equal(0, reader.Remaining);
        return reply;
    }

    [Fact]
    public void Single_line_with_enhanced_code()
    {
        var reply = ParseAll("550 5.1.1 No such user here\r\n");

        Assert.Equal(550, reply.Code);
        Assert.Equal("5.1.1", reply.EnhancedCode);
        Assert.Equal("No such user here", reply.Text);
        Assert.True(reply.IsPermanent);
    }

    [Fact]
    public void Multi_line_reply_collects_every_line()
    {
        var reply = ParseAll("250-mx.example greets you\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n");

        Assert.Equal(250, reply.Code);
        Assert.Null(reply.EnhancedCode);
        Assert.Equal(["mx.example greets you", "PIPELINING", "SIZE 1000", "8BITMIME"], reply.Lines);
    }

    [Fact]
    public void Enhanced_code_is_stripped_from_every_line_and_taken_from_the_first()
    {
        var reply = ParseAll("452-4.5.3 Too many\r\n452 4.5.3 recipients\r\n");

        Assert.Equal("4.5.3", reply.EnhancedCode);
        Assert.Equal("Too many recipients", reply.Text);
    }

    [Theory]
    [InlineData("250 2.0.0\r\n", "2.0.0", "")]
    [InlineData("250\r\n", null, "")]
    [InlineData("451 5.1.1 class mismatch\r\n", null, "5.1.1 class mismatch")]
    [InlineData("250 2.0.0.1 not a code\r\n", null, "2.0.0.1 not a code")]
    [InlineData("250 2.1234.0 not a code\r\n", null, "2.1234.0 not a code")]
    [InlineData("220 mx ESMTP\n", null, "mx ESMTP")]
    public void Edge_cases(string input, string? enhanced, string text)
    {
        var reply = ParseAll(input);

        Assert.Equal(enhanced, reply.EnhancedCode);
        Assert.Equal(text, reply.Text);
    }

    [Fact]
    public void Split_at_every_byte_boundary_parses_the_same()
    {
        var bytes = Encoding.ASCII.GetBytes("250-first\r\n250-2.0.0 second\r\n250 third\r\n354 go\r\n");
        for (var split = 0; split <= bytes.Length; split++)
        {
            var first = new Segment(bytes.AsMemory(0, split));
            var last = first.Append(bytes.AsMemory(split));
            var sequence = new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
            var reader = new SequenceReader<byte>(sequence);
            var parser = new ServerReplyParser();

            Assert.True(parser.TryParse(ref reader, out var one));
            Assert.True(parser.TryParse(ref reader, out var two));

            Assert.Equal(["first", "second", "third"], one.Lines);
            Assert.Equal(354, two.Code);
        }
    }

    [Fact]
    public void Incomplete_reply_consumes_nothing()
    {
        foreach (var partial in new[] { "", "25", "250-a\r\n", "250-a\r\n250 b" })
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(partial)));
            Assert.False(new ServerReplyParser().TryParse(ref reader, out _));
            Assert.Equal(0, reader.Consumed);
        }
    }

    [Theory]
    [InlineData("hello\r\n")]
    [InlineData("25\r\n")]
    [InlineData("150 bad class\r\n")]
    [InlineData("250x\r\n")]
    [InlineData("250-a\r\n251 b\r\n")]
    public void Malformed_replies_throw(string input)
    {
        Assert.Throws<SmtpReplyException>(() => ParseAll(input));
    }

    [Fact]
    public void Overlong_line_throws_instead_of_buffering()
    {
        var parser = new ServerReplyParser { MaxLineLength = 64 };
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("250 " + new string('x', 100))));
        try
        {
            var parsed = parser.TryParse(ref reader, out _);
            Assert.Fail($"expected an exception, got {parsed}");
        }
        catch (SmtpReplyException)
        {
        }
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}

public sealed class EhloCapabilitiesTests
{
    [Fact]
    public void Keywords_and_size_are_parsed()
    {
        var reply = new ServerReply(250, null, ["mx.example hello", "pipelining", "SIZE 35882577", "8BITMIME", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN", "CHUNKING", "bad_keyword"]);

        var caps = EhloCapabilities.Parse(reply);

        Assert.True(caps.Pipelining);
        Assert.True(caps.EightBitMime);
        Assert.True(caps.EnhancedStatusCodes);
        Assert.True(caps.Chunking);
        Assert.False(caps.BinaryMime);
        Assert.False(caps.StartTls);
        Assert.Equal(35882577L, caps.SizeLimit);
        Assert.Equal("PLAIN LOGIN", caps.Keywords["AUTH"]);
        Assert.False(caps.Has("BAD_KEYWORD"));
        Assert.Equal("mx.example hello", caps.Greeting);
    }

    [Theory]
    [InlineData("SIZE")]
    [InlineData("SIZE 0")]
    [InlineData("SIZE nonsense")]
    public void Size_without_a_fixed_maximum(string line)
    {
        var caps = EhloCapabilities.Parse(new ServerReply(250, null, ["mx", line]));

        Assert.True(caps.Size);
        Assert.Null(caps.SizeLimit);
    }
}

public sealed class DotStuffingWriterTests
{
    private static string Stuff(string content) => Encoding.Latin1.GetString(DotStuffingWriter.Stuff(Encoding.Latin1.GetBytes(content)));

    [Theory]
    [InlineData("", ".\r\n")]
    [InlineData("a\r\n", "a\r\n.\r\n")]
    [InlineData("a", "a\r\n.\r\n")]
    [InlineData(".\r\n", "..\r\n.\r\n")]
    [InlineData("a\r\n.b\r\n..c\r\n", "a\r\n..b\r\n...c\r\n.\r\n")]
    [InlineData(".start", "..start\r\n.\r\n")]
    [InlineData("x.y\r\n", "x.y\r\n.\r\n")]
    [InlineData("\r\n.\r\n", "\r\n..\r\n.\r\n")]
    public void Stuffs_and_terminates(string content, string expected)
    {
        Assert.Equal(expected, Stuff(content));
    }

    [Theory]
    [InlineData("a\nb\r\n", "a\r\nb\r\n.\r\n")]
    [InlineData("a\rb\r\n", "a\r\nb\r\n.\r\n")]
    [InlineData("a\r", "a\r\n.\r\n")]
    [InlineData("a\n.\nb", "a\r\n..\r\nb\r\n.\r\n")]
    [InlineData("a\r\r\n", "a\r\n\r\n.\r\n")]
    public void Bare_CR_and_LF_become_CRLF(string content, string expected)
    {
        Assert.Equal(expected, Stuff(content));
    }

    [Fact]
    public void Eight_bit_bytes_pass_unchanged()
    {
        var content = new byte[] { 0xC3, 0xA9, 0xFF, 0x00, 0x80, (byte)'\r', (byte)'\n' };

        Assert.Equal([.. content, (byte)'.', (byte)'\r', (byte)'\n'], DotStuffingWriter.Stuff(content));
    }

    [Fact]
    public void Chunk_boundaries_anywhere_give_the_same_output()
    {
        var content = Encoding.ASCII.GetBytes("Subject: x\r\n\r\n.line\r\nbare\nlf\rcr\r\n..\r\nend");
        var expected = DotStuffingWriter.Stuff(content);
        for (var split = 0; split <= content.Length; split++)
        {
            for (var second = split; second <= content.Length; second += 3)
            {
                var output = new ArrayBufferWriter<byte>();
                var writer = new DotStuffingWriter(output);
                writer.Write(content.AsSpan(0, split));
                writer.Write(content.AsSpan(split, second - split));
                writer.Write(content.AsSpan(second));
                writer.Complete();
                Assert.Equal(expected, output.WrittenSpan.ToArray());
            }
        }
    }

    [Fact]
    public void Counts_repairs_and_bytes()
    {
        var output = new ArrayBufferWriter<byte>();
        var writer = new DotStuffingWriter(output);
        writer.Write("a\nb\r\n"u8);
        writer.Complete();

        Assert.Equal(1, writer.LineEndsRepaired);
        Assert.Equal(output.WrittenCount, writer.BytesWritten);
        Assert.Throws<ObjectDisposedException>(() => writer.Write("x"u8));
    }
}
