using System.Buffers;
using System.Text;

namespace MailMesh.Smtp.Tests;

public sealed class SmtpDataReaderTests
{
    private sealed record Outcome(string Content, string Rest, SmtpDataReader Reader, bool Complete);

    private static Outcome Read(string transcript, int[] chunks, long maxSize = 1 << 20, int maxLine = 1000, BareLineEndingHandling handling = BareLineEndingHandling.Reject)
    {
        var reader = new SmtpDataReader(maxSize, maxLine, handling);
        reader.Reset();
        var output = new ArrayBufferWriter<byte>();
        var complete = false;
        var (rest, _) = Feeder.Run(Feeder.Ascii(transcript), chunks, (ref SequenceReader<byte> r) =>
        {
            if (complete)
            {
                return false; // what follows the end of data belongs to the command reader
            }

            complete = reader.TryRead(ref r, output);
            return false;
        });
        return new Outcome(Encoding.Latin1.GetString(output.WrittenSpan), Encoding.Latin1.GetString(rest), reader, complete);
    }

    private static void EverySplit(string transcript, Action<Outcome> check, BareLineEndingHandling handling = BareLineEndingHandling.Reject, long maxSize = 1 << 20, int maxLine = 1000)
    {
        foreach (var chunks in Feeder.Splits(transcript.Length))
        {
            check(Read(transcript, chunks, maxSize, maxLine, handling));
        }
    }

    [Fact]
    public void Ends_only_on_CRLF_dot_CRLF_and_leaves_pipelined_commands() =>
        EverySplit("Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n", o =>
        {
            Assert.True(o.Complete);
            Assert.Equal("Subject: hi\r\n\r\nbody\r\n", o.Content);
            Assert.Equal("QUIT\r\n", o.Rest);
            Assert.Null(o.Reader.Error);
            Assert.Equal(o.Content.Length, o.Reader.Size);
        });

    [Fact]
    public void Empty_message() =>
        EverySplit(".\r\n", o =>
        {
            Assert.True(o.Complete);
            Assert.Equal(string.Empty, o.Content);
        });

    [Fact]
    public void Dot_unstuffing_RFC_5321_4_5_2() =>
        EverySplit("..leading dot\r\n...\r\n.x\r\nmid.dle\r\n.\r\n", o =>
        {
            Assert.True(o.Complete);
            Assert.Equal(".leading dot\r\n..\r\nx\r\nmid.dle\r\n", o.Content);
        });

    // Every end-of-data look-alike of the SMTP smuggling attacks: none may end the message, and the message they are
    // in is refused once the real end arrives. The "smuggled" command after the fake end must stay content.
    [Theory]
    [InlineData("a\n.\nMAIL FROM:<x@y.z>\r\n")]
    [InlineData("a\r.\rMAIL FROM:<x@y.z>\r\n")]
    [InlineData("a\n.\r\nMAIL FROM:<x@y.z>\r\n")]
    [InlineData("a\r\n.\nMAIL FROM:<x@y.z>\r\n")]
    [InlineData("a\r.\r\nMAIL FROM:<x@y.z>\r\n")]
    [InlineData("a\r\n.\rMAIL FROM:<x@y.z>\r\n")]
    [InlineData("a\r\n.\r\rMAIL FROM:<x@y.z>\r\n")]
    [InlineData("a\r\n\r.\r\nMAIL FROM:<x@y.z>\r\n")]
    [InlineData("a\n\n.\n\nMAIL FROM:<x@y.z>\r\n")]
    [InlineData("\n.\nMAIL FROM:<x@y.z>\r\n")]
    public void Smuggling_variants_never_end_data_and_are_refused(string content) =>
        EverySplit(content + ".\r\nQUIT\r\n", o =>
        {
            Assert.True(o.Complete);
            Assert.Equal("QUIT\r\n", o.Rest);
            Assert.True(o.Reader.SawBareLineEnding);
            Assert.Equal(554, o.Reader.Error!.Code);
            Assert.Equal("5.6.0", o.Reader.Error.EnhancedCode);
        });

    [Theory]
    [InlineData("a\n.\nb\r\n", "a\r\n.\r\nb\r\n")]
    [InlineData("a\r.\rb\r\n", "a\r\n.\r\nb\r\n")]
    [InlineData("a\r\n.\nb\r\n", "a\r\n.\r\nb\r\n")]
    [InlineData("a\n..b\r\n", "a\r\n..b\r\n")]
    [InlineData("x\ny\r\n", "x\r\ny\r\n")]
    public void Normalize_mode_rewrites_bare_line_endings_but_still_ends_only_on_CRLF_dot_CRLF(string content, string expected) =>
        EverySplit(
            content + ".\r\nQUIT\r\n",
            o =>
            {
                Assert.True(o.Complete);
                Assert.Equal("QUIT\r\n", o.Rest);
                Assert.Null(o.Reader.Error);
                Assert.Equal(expected, o.Content);
            },
            BareLineEndingHandling.Normalize);

    [Fact]
    public void Size_limit_reads_to_the_end_then_552() =>
        EverySplit(
            "0123456789\r\n0123456789\r\n.\r\nNOOP\r\n",
            o =>
            {
                Assert.True(o.Complete);
                Assert.Equal("NOOP\r\n", o.Rest);
                Assert.True(o.Reader.SizeExceeded);
                Assert.Equal(552, o.Reader.Error!.Code);
                Assert.Equal("5.3.4", o.Reader.Error.EnhancedCode);
                Assert.True(o.Content.Length <= 20);
            },
            maxSize: 20);

    [Fact]
    public void Size_exactly_at_the_limit_is_accepted() =>
        EverySplit("0123456789\r\n.\r\n", o => Assert.Null(o.Reader.Error), maxSize: 12);

    [Fact]
    public void Overlong_content_line_is_refused() =>
        EverySplit(
            new string('x', 20) + "\r\nok\r\n.\r\n",
            o =>
            {
                Assert.True(o.Complete);
                Assert.True(o.Reader.LineTooLong);
                Assert.Equal(554, o.Reader.Error!.Code);
            },
            maxLine: 21);

    [Fact]
    public void Line_at_the_limit_is_accepted() =>
        EverySplit("." + new string('x', 18) + "\r\n.\r\n", o => Assert.Null(o.Reader.Error), maxLine: 21);

    [Fact]
    public void Tracks_8bit_content()
    {
        EverySplit("caf\u00e9\r\n.\r\n", o => Assert.True(o.Reader.Has8BitData));
        EverySplit("plain\r\n.\r\n", o => Assert.False(o.Reader.Has8BitData));
    }

    [Fact]
    public void Incomplete_data_needs_more()
    {
        var o = Read("body\r\n.\r", [7]);
        Assert.False(o.Complete);
        Assert.Equal(string.Empty, o.Rest); // partial terminators are state, not buffered bytes
    }

    [Fact]
    public void Reader_is_reusable_after_Reset()
    {
        var reader = new SmtpDataReader(100, 1000);
        var output = new ArrayBufferWriter<byte>();
        var first = new SequenceReader<byte>(Feeder.Segments(Feeder.Ascii("a\nb\r\n.\r\n")));
        Assert.True(reader.TryRead(ref first, output));
        Assert.NotNull(reader.Error);
        reader.Reset();
        output.Clear();
        var second = new SequenceReader<byte>(Feeder.Segments(Feeder.Ascii("ok\r\n.\r\n")));
        Assert.True(reader.TryRead(ref second, output));
        Assert.Null(reader.Error);
        Assert.Equal("ok\r\n", Encoding.ASCII.GetString(output.WrittenSpan));
    }
}
