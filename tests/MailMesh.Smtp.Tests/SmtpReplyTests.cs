using System.Buffers;
using System.Text;

namespace MailMesh.Smtp.Tests;

public sealed class SmtpReplyTests
{
    [Fact]
    public void Single_line() => Assert.Equal("250 2.0.0 Ok\r\n", SmtpReplies.Ok.ToString());

    [Fact]
    public void Multi_line_RFC_5321_4_2_1()
    {
        var reply = new SmtpReply(250, null, "mx.example greets you", "PIPELINING", "SIZE 100");
        var writer = new ArrayBufferWriter<byte>();
        reply.WriteTo(writer);
        Assert.Equal("250-mx.example greets you\r\n250-PIPELINING\r\n250 SIZE 100\r\n", Encoding.ASCII.GetString(writer.WrittenSpan));
        Assert.Equal(writer.WrittenCount, reply.EncodedLength);
    }

    [Fact]
    public void Enhanced_code_on_every_line_RFC_2034() =>
        Assert.Equal("550-5.7.1 a\r\n550 5.7.1 b\r\n", new SmtpReply(550, "5.7.1", "a", "b").ToString());

    [Fact]
    public void Text_cannot_break_the_framing() =>
        Assert.Equal("550 5.7.1 evil??250 ok?\r\n", new SmtpReply(550, "5.7.1", "evil\r\n250 ok\u00e9").ToString());

    [Theory]
    [InlineData("2.0.0", 250, true)]
    [InlineData("5.7.1", 550, true)]
    [InlineData("4.3.0", 451, true)]
    [InlineData("5.7.1", 451, false)]
    [InlineData("5.07.1", 550, false)]
    [InlineData("5.7", 550, false)]
    [InlineData("3.0.0", 354, false)]
    [InlineData("5.1234.1", 550, false)]
    public void Enhanced_code_validation(string code, int reply, bool valid) =>
        Assert.Equal(valid, SmtpReply.IsValidEnhancedCode(code, reply));

    [Fact]
    public void Received_headers_are_counted_in_the_header_section_only()
    {
        var content = "Received: from a\r\n\tby b\r\nreceived: from c\r\nSubject: x\r\n\r\nReceived: in body\r\n"u8;
        Assert.Equal(2, TraceHeaders.CountReceived(content));
    }
}
