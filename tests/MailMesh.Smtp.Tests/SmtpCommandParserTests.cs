using System.Text;

namespace MailMesh.Smtp.Tests;

public sealed class SmtpCommandParserTests
{
    private static SmtpCommand Parse(string line)
    {
        Assert.True(SmtpCommandParser.TryParse(Encoding.Latin1.GetBytes(line), out var command, out var error), error?.ToString());
        return command;
    }

    private static SmtpReply Fail(string line)
    {
        Assert.False(SmtpCommandParser.TryParse(Encoding.Latin1.GetBytes(line), out _, out var error));
        return error;
    }

    [Theory]
    [InlineData("HELO client.example", SmtpCommandKind.Helo)]
    [InlineData("ehlo client.example", SmtpCommandKind.Ehlo)]
    [InlineData("EhLo [192.0.2.1]", SmtpCommandKind.Ehlo)]
    [InlineData("DATA", SmtpCommandKind.Data)]
    [InlineData("RSET", SmtpCommandKind.Rset)]
    [InlineData("NOOP", SmtpCommandKind.Noop)]
    [InlineData("NOOP anything at all", SmtpCommandKind.Noop)]
    [InlineData("QUIT", SmtpCommandKind.Quit)]
    [InlineData("VRFY user", SmtpCommandKind.Vrfy)]
    [InlineData("EXPN list", SmtpCommandKind.Expn)]
    [InlineData("HELP", SmtpCommandKind.Help)]
    [InlineData("HELP MAIL", SmtpCommandKind.Help)]
    [InlineData("STARTTLS", SmtpCommandKind.StartTls)]
    [InlineData("AUTH PLAIN AGJvYgBzZWNyZXQ=", SmtpCommandKind.Auth)]
    [InlineData("BDAT 100 LAST", SmtpCommandKind.Bdat)]
    public void Verbs(string line, SmtpCommandKind kind) => Assert.Equal(kind, Parse(line).Kind);

    [Fact]
    public void Ehlo_takes_the_client_name() => Assert.Equal("client.example", Parse("EHLO client.example").ClientName);

    [Fact]
    public void Mail_with_parameters()
    {
        var command = Parse("MAIL FROM:<Sender@Example.COM> SIZE=12345 BODY=8BITMIME");
        Assert.Equal(SmtpCommandKind.Mail, command.Kind);
        Assert.Equal("Sender@example.com", command.Mailbox!.Address);
        Assert.Equal([new EsmtpParameter("SIZE", "12345"), new EsmtpParameter("BODY", "8BITMIME")], command.Parameters);
        Assert.True(MailParameters.TryParse(command.Parameters, out var parameters, out _));
        Assert.Equal(12345, parameters.Size);
        Assert.Equal(SmtpBodyType.EightBitMime, parameters.Body);
    }

    [Theory]
    [InlineData("MAIL FROM:<>")]
    [InlineData("mail from:<>")]
    [InlineData("MAIL FROM: <>")]
    public void Null_sender(string line)
    {
        var command = Parse(line);
        Assert.True(command.IsNullPath);
        Assert.Null(command.Mailbox);
    }

    [Fact]
    public void Rcpt_postmaster() => Assert.True(Parse("RCPT TO:<Postmaster>").IsPostmaster);

    [Fact]
    public void Keyword_only_parameter() =>
        Assert.Equal([new EsmtpParameter("SMTPUTF8", null)], Parse("MAIL FROM:<a@b.c> SMTPUTF8").Parameters);

    [Theory]
    [InlineData("FOO", 500, "5.5.1")]
    [InlineData("MAILX FROM:<a@b.c>", 500, "5.5.1")]
    [InlineData("", 500, "5.5.1")]
    [InlineData("HELO", 501, "5.5.4")]
    [InlineData("EHLO ", 501, "5.5.4")]
    [InlineData("DATA now", 501, "5.5.4")]
    [InlineData("QUIT please", 501, "5.5.4")]
    [InlineData("VRFY", 501, "5.5.4")]
    [InlineData("MAIL", 501, "5.5.4")]
    [InlineData("MAIL TO:<a@b.c>", 501, "5.5.4")]
    [InlineData("MAIL FROM:a@b.c", 501, "5.5.4")]
    [InlineData("MAIL FROM:<a@b.c>SIZE=1", 501, "5.5.4")]
    [InlineData("MAIL FROM:<a@b.c> SIZE=", 501, "5.5.4")]
    [InlineData("MAIL FROM:<a@b.c> -X=1", 501, "5.5.4")]
    [InlineData("MAIL FROM:<a@b.c> X=a=b", 501, "5.5.4")]
    [InlineData("MAIL FROM:<a..b@b.c>", 501, "5.1.7")]
    [InlineData("MAIL FROM:<@x.y:a@b.c>", 501, "5.1.7")]
    [InlineData("MAIL FROM:<Postmaster>", 501, "5.1.7")]
    [InlineData("RCPT TO:<>", 501, "5.1.3")]
    [InlineData("RCPT TO:<a@>", 501, "5.1.3")]
    [InlineData("RCPT TO:<@a.example,@b.example:user@c.example>", 501, "5.1.3")]
    [InlineData("RCPT FROM:<a@b.c>", 501, "5.5.4")]
    [InlineData("NOOP \u0001", 501, "5.5.2")]
    [InlineData("MAIL FROM:<caf\u00e9@b.c>", 501, "5.5.2")]
    public void Syntax_errors(string line, int code, string enhanced)
    {
        var reply = Fail(line);
        Assert.Equal(code, reply.Code);
        Assert.Equal(enhanced, reply.EnhancedCode);
    }

    [Fact]
    public void Overlong_local_part_is_501_5_1_3()
    {
        var reply = Fail("RCPT TO:<" + new string('a', 65) + "@example.com>");
        Assert.Equal(501, reply.Code);
        Assert.Equal("5.1.3", reply.EnhancedCode);
    }

    [Theory]
    [InlineData("SIZE=1 SIZE=2", 501)]
    [InlineData("SIZE=abc", 501)]
    [InlineData("SIZE=123456789012345678901", 501)]
    [InlineData("BODY=9BIT", 501)]
    [InlineData("BODY=7BIT BODY=8BITMIME", 501)]
    [InlineData("FOO=BAR", 555)]
    [InlineData("SMTPUTF8=YES", 501)]
    [InlineData("MT-PRIORITY=1", 555)]
    [InlineData("RET=NONE", 501)]
    [InlineData("RET=FULL RET=HDRS", 501)]
    [InlineData("ENVID=abc+2", 501)]
    [InlineData("ENVID=a+ZZb", 501)]
    public void Mail_parameter_errors(string parameters, int code)
    {
        var command = Parse("MAIL FROM:<a@b.c> " + parameters);
        Assert.False(MailParameters.TryParse(command.Parameters, out _, out var error));
        Assert.Equal(code, error.Code);
    }

    [Fact]
    public void Size_of_twenty_digits_saturates()
    {
        var command = Parse("MAIL FROM:<a@b.c> SIZE=99999999999999999999");
        Assert.True(MailParameters.TryParse(command.Parameters, out var parameters, out _));
        Assert.Equal(long.MaxValue, parameters.Size);
    }

    [Fact]
    public void Multi_segment_line_parses_the_same()
    {
        var sequence = Feeder.Segments(Feeder.Ascii("MAIL FR"), Feeder.Ascii("OM:<a@b"), Feeder.Ascii(".c> SIZE=10"));
        Assert.True(SmtpCommandParser.TryParse(sequence, out var command, out _));
        Assert.Equal("a@b.c", command.Mailbox!.Address);
    }

    [Theory]
    [InlineData("BDAT 0", 0L, false)]
    [InlineData("BDAT 100 LAST", 100L, true)]
    [InlineData("bdat 7 last", 7L, true)]
    [InlineData("BDAT   42   LAST  ", 42L, true)]
    [InlineData("BDAT 999999999999999999", 999_999_999_999_999_999L, false)]
    public void Bdat_chunk_size_and_LAST(string line, long size, bool last)
    {
        var command = Parse(line);
        Assert.Equal(SmtpCommandKind.Bdat, command.Kind);
        Assert.Equal(size, command.ChunkSize);
        Assert.Equal(last, command.IsLastChunk);
    }

    [Theory]
    [InlineData("BDAT")]
    [InlineData("BDAT ")]
    [InlineData("BDAT LAST")]
    [InlineData("BDAT -1")]
    [InlineData("BDAT +1")]
    [InlineData("BDAT 1.5")]
    [InlineData("BDAT 0x10")]
    [InlineData("BDAT 10 LAST more")]
    [InlineData("BDAT 10 FIRST")]
    [InlineData("BDAT 1000000000000000000")]
    [InlineData("BDAT 10\u0001")]
    [InlineData("BDAT 10\u00e9")]
    [InlineData("BDAT\t10")]
    [InlineData("BDAT 10\tLAST")]
    public void Bdat_whose_size_cannot_be_read_is_the_closing_syntax_error(string line)
    {
        // RFC 3030 §2: the chunk's length is unknown, so the session must close; SyntaxBdat is how the caller knows.
        Assert.Same(SmtpReplies.SyntaxBdat, Fail(line));
        Assert.Equal(554, SmtpReplies.SyntaxBdat.Code);
    }

    [Fact]
    public void Bdat_verb_is_recognised_before_other_checks()
    {
        Assert.True(SmtpCommandParser.IsBdatVerb("BDAT 1\u0001"u8));
        Assert.True(SmtpCommandParser.IsBdatVerb("bdat"u8));
        Assert.False(SmtpCommandParser.IsBdatVerb("BDATX 1"u8));
        Assert.False(SmtpCommandParser.IsBdatVerb("BDA"u8));
    }
}
