using System.Buffers;
using System.Text;
using MailMesh.Mailbox.Imap;
using MailMesh.Smtp.Tests;

namespace MailMesh.Mailbox.Tests.Imap;

/// <summary>IMAP command framing (RFC 9051 §4.3, RFC 7888) fed in every split: two parts at each byte, and one byte at a time.</summary>
public sealed class ImapCommandReaderTests
{
    private static readonly ImapLimits Small = new(MaxLineLength: 64, MaxCommandSize: 128, MaxInlineLiteral: 32, MaxMessageSize: 1000);

    private static List<string> Read(string transcript, int[] chunks, ImapLimits limits, out long maxBuffered)
    {
        var results = new List<string>();
        var reader = new ImapCommandReader(limits);
        long skip = 0;
        var input = Feeder.Ascii(transcript);
        (_, maxBuffered) = Feeder.Run(input, chunks, (ref SequenceReader<byte> r) =>
        {
            if (skip > 0)
            {
                // What the session does for a streamed APPEND literal: take exactly its octets.
                var take = Math.Min(skip, r.Remaining);
                if (take == 0)
                {
                    return false;
                }

                r.Advance(take);
                skip -= take;
                if (skip == 0)
                {
                    reader.StreamDone();
                }

                return true;
            }

            var status = reader.TryRead(ref r);
            switch (status)
            {
                case ImapReadStatus.NeedMore:
                    return false;
                case ImapReadStatus.Command:
                    results.Add("CMD " + Encoding.Latin1.GetString(reader.Command.Span).Replace("\0", "<S>", StringComparison.Ordinal).Replace("\r\n", "|", StringComparison.Ordinal));
                    reader.Reset();
                    break;
                case ImapReadStatus.StreamLiteral:
                    results.Add("STREAM " + reader.StreamLength + (reader.StreamSynchronizing ? " sync" : " nonsync"));
                    skip = reader.StreamLength;
                    break;
                case ImapReadStatus.TooLong or ImapReadStatus.LiteralRefused:
                    results.Add(status + " " + reader.RejectedTag);
                    break;
                default:
                    results.Add(status.ToString());
                    break;
            }

            return true;
        });
        return results;
    }

    private static void AssertEverySplit(string transcript, ImapLimits limits, params string[] expected)
    {
        foreach (var chunks in Feeder.Splits(transcript.Length))
        {
            var actual = Read(transcript, chunks, limits, out var maxBuffered);
            Assert.True(expected.SequenceEqual(actual), $"split [{string.Join(",", chunks.Take(5))}...]: {string.Join(" | ", actual)}");

            // What stays in the pipe is bounded by the line limit: the reader copies what it keeps into its own capped buffer.
            Assert.True(maxBuffered <= limits.MaxLineLength, $"buffered {maxBuffered}");
        }
    }

    [Fact]
    public void Pipelined_commands() =>
        AssertEverySplit("a1 NOOP\r\na2 CAPABILITY\r\n", Small, "CMD a1 NOOP|", "CMD a2 CAPABILITY|");

    [Fact]
    public void Synchronizing_literal_asks_for_continuation_and_is_kept_inline() =>
        AssertEverySplit("a1 LOGIN {5}\r\nalice {3}\r\npwd\r\na2 NOOP\r\n", Small,
            "NeedContinuation", "NeedContinuation", "CMD a1 LOGIN {5}|alice {3}|pwd|", "CMD a2 NOOP|");

    [Fact]
    public void Non_synchronizing_literal_needs_no_continuation() =>
        AssertEverySplit("a1 LOGIN {5+}\r\nalice x\r\n", Small, "CMD a1 LOGIN {5+}|alice x|");

    [Fact]
    public void Literal_content_is_not_parsed_for_line_ends_or_announcements() =>
        AssertEverySplit("a1 X {6+}\r\n{9}\r\n\n y\r\n", Small, "CMD a1 X {6+}|{9}|\n y|");

    [Fact]
    public void Overlong_line_is_refused_with_its_tag_and_the_session_goes_on() =>
        AssertEverySplit("t7 LOGIN " + new string('x', 100) + "\r\na2 NOOP\r\n", Small, "TooLong t7", "CMD a2 NOOP|");

    [Fact]
    public void Oversized_synchronizing_literal_is_refused_without_reading_it() =>
        AssertEverySplit("a1 LOGIN {500}\r\na2 NOOP\r\n", Small, "LiteralRefused a1", "CMD a2 NOOP|");

    [Fact]
    public void Oversized_non_synchronizing_literal_is_skipped_and_refused() =>
        AssertEverySplit("a1 X {200+}\r\n" + new string((char)121, 200) + " z\r\na2 NOOP\r\n", Small, "TooLong a1", "CMD a2 NOOP|");

    [Fact]
    public void Non_synchronizing_literal_over_4096_is_refused_as_LITERAL_minus_says()
    {
        var limits = new ImapLimits(100, 10000, 10000, 100000);
        var actual = Read("a1 X {5000+}\r\n" + new string((char)121, 5000) + "\r\na2 NOOP\r\n", [5020, 5], limits, out _);
        Assert.Equal(["TooLong a1", "CMD a2 NOOP|"], actual);
    }

    [Fact]
    public void APPEND_message_literal_is_streamed_not_buffered() =>
        AssertEverySplit("a1 APPEND INBOX (\\Seen) {40}\r\n" + new string('m', 40) + "\r\na2 NOOP\r\n", Small,
            "STREAM 40 sync", "CMD a1 APPEND INBOX (\\Seen) <S>|", "CMD a2 NOOP|");

    [Fact]
    public void APPEND_over_the_message_size_is_refused() =>
        AssertEverySplit("a1 APPEND INBOX {5000}\r\na2 NOOP\r\n", Small, "LiteralRefused a1", "CMD a2 NOOP|");

    [Fact]
    public void Non_synchronizing_APPEND_over_the_message_size_is_skipped_and_refused_as_too_big() =>
        AssertEverySplit("a1 APPEND INBOX {1500+}\r\n" + new string('m', 1500) + "\r\na2 NOOP\r\n", Small, "LiteralRefused a1", "CMD a2 NOOP|");

    [Fact]
    public void Bare_LF_ends_a_line() =>
        AssertEverySplit("a1 NOOP\na2 NOOP\r\n", Small, "CMD a1 NOOP|", "CMD a2 NOOP|");
}
