using System.Buffers;

namespace MailMesh.Smtp.Tests;

public sealed class SmtpLineReaderTests
{
    private static List<string> ReadAll(string transcript, int[] chunks, int maxLength, out long maxBuffered)
    {
        var results = new List<string>();
        var lines = new SmtpLineReader(maxLength);
        var input = Feeder.Ascii(transcript);
        (_, maxBuffered) = Feeder.Run(input, chunks, (ref SequenceReader<byte> reader) =>
        {
            var status = lines.TryReadLine(ref reader, out var line);
            switch (status)
            {
                case LineStatus.NeedMore:
                    return false;
                case LineStatus.Line:
                    results.Add("LINE " + Feeder.Text(line));
                    break;
                default:
                    results.Add(status.ToString());
                    break;
            }

            return true;
        });
        return results;
    }

    private static void AssertEverySplit(string transcript, int maxLength, params string[] expected)
    {
        foreach (var chunks in Feeder.Splits(transcript.Length))
        {
            var actual = ReadAll(transcript, chunks, maxLength, out var maxBuffered);
            Assert.True(expected.SequenceEqual(actual), $"split [{string.Join(",", chunks.Take(5))}...]: {string.Join(" | ", actual)}");
            // Memory is bounded by the limit whatever the split.
            Assert.True(maxBuffered <= maxLength, $"buffered {maxBuffered} > {maxLength}");
        }
    }

    [Fact]
    public void Pipelined_commands_are_read_in_any_split() =>
        AssertEverySplit(
            "EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n",
            512,
            "LINE EHLO client.example",
            "LINE MAIL FROM:<a@example.com>",
            "LINE RCPT TO:<b@example.org>",
            "LINE DATA");

    [Fact]
    public void Empty_line_is_a_line() => AssertEverySplit("\r\nNOOP\r\n", 512, "LINE ", "LINE NOOP");

    [Fact]
    public void Bare_LF_ends_the_line_as_an_error() =>
        AssertEverySplit("NOOP\nQUIT\r\n", 512, "BareLineEnding", "LINE QUIT");

    [Fact]
    public void Bare_CR_inside_a_line_makes_it_an_error() =>
        AssertEverySplit("NO\rOP\r\nQUIT\r\n", 512, "BareLineEnding", "LINE QUIT");

    [Fact]
    public void CR_CR_LF_is_a_bare_CR() => AssertEverySplit("NOOP\r\r\nQUIT\r\n", 512, "BareLineEnding", "LINE QUIT");

    [Fact]
    public void Lone_LF_is_an_error() => AssertEverySplit("\nNOOP\r\n", 512, "BareLineEnding", "LINE NOOP");

    [Fact]
    public void Overlong_line_is_discarded_and_reported_once_at_its_end() =>
        AssertEverySplit(new string('A', 600) + "\r\nQUIT\r\n", 512, "TooLong", "LINE QUIT");

    [Fact]
    public void Line_at_the_limit_is_accepted_one_more_is_too_long()
    {
        var exact = new string('A', 510); // 510 + CRLF = 512 (RFC 5321 §4.5.3.1.4)
        AssertEverySplit(exact + "\r\n", 512, "LINE " + exact);
        AssertEverySplit(exact + "A\r\nNOOP\r\n", 512, "TooLong", "LINE NOOP");
    }

    [Fact]
    public void Overlong_line_ending_in_bare_LF_is_too_long() =>
        AssertEverySplit(new string('B', 40) + "\nNOOP\r\n", 16, "TooLong", "LINE NOOP");

    [Fact]
    public void Partial_line_needs_more_and_is_not_consumed()
    {
        var lines = new SmtpLineReader(512);
        var sequence = Feeder.Segments(Feeder.Ascii("NOOP\r"));
        var reader = new SequenceReader<byte>(sequence);
        Assert.Equal(LineStatus.NeedMore, lines.TryReadLine(ref reader, out _));
        Assert.Equal(0, reader.Consumed);
    }

    [Fact]
    public void Endless_line_without_LF_keeps_memory_bounded()
    {
        var lines = new SmtpLineReader(64);
        for (var i = 0; i < 1000; i++)
        {
            var reader = new SequenceReader<byte>(Feeder.Segments(new byte[4096]));
            Assert.Equal(LineStatus.NeedMore, lines.TryReadLine(ref reader, out _));
            Assert.True(reader.End);
        }

        Assert.True(lines.IsDiscarding);
    }
}
