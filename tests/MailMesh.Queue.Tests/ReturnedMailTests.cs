using System.Text;
using MailMesh.ServiceDefaults.Bounces;

namespace MailMesh.Queue.Tests;

/// <summary>The VERP return path's token, and reading the DSNs and feedback reports that come back to it.</summary>
public sealed class ReturnedMailTests
{
    private static readonly ReturnPathOptions ReturnPath = new() { Domain = "Bounce.Example.", Secret = new string('k', 32) };

    [Fact]
    public void A_return_path_names_its_message_and_only_an_issued_one_is_read()
    {
        var id = Guid.NewGuid();
        var address = ReturnPath.For(id);

        Assert.EndsWith("@bounce.example", address, StringComparison.Ordinal);
        Assert.True(address.IndexOf('@', StringComparison.Ordinal) <= 64);
        Assert.True(ReturnPath.TryRead(address, out var read));
        Assert.Equal(id, read);
        Assert.True(ReturnPath.TryRead(address.ToUpperInvariant(), out _)); // some MTAs upper-case local parts

        // A forged or altered token, another domain, another secret: not ours.
        var other = Guid.NewGuid().ToByteArray();
        var forged = "bounces+" + Convert.ToHexStringLower(other) + address[(8 + 32)..];
        Assert.False(ReturnPath.TryRead(forged, out _));
        Assert.False(ReturnPath.TryRead(address.Replace("@bounce.example", "@other.example", StringComparison.Ordinal), out _));
        Assert.False(new ReturnPathOptions { Domain = "bounce.example", Secret = new string('x', 32) }.TryRead(address, out _));
        Assert.False(ReturnPath.TryRead("postmaster@bounce.example", out _));
    }

    [Theory]
    [InlineData("bad domain!", "0123456789abcdef0123456789abcdef", "ReturnPath:Domain")]
    [InlineData("bounce.example", "short", "ReturnPath:Secret: must be at least 32 characters")]
    public void Bad_return_path_settings_name_the_key(string domain, string secret, string expected)
    {
        var errors = new ReturnPathOptions { Domain = domain, Secret = secret }.Validate().ToList();
        Assert.Contains(errors, e => e.StartsWith(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void A_DSN_yields_its_failed_recipients_with_status_and_diagnostic()
    {
        var reports = Parse(Dsn(("gone@dest.example", "failed", "5.1.1", "smtp; 550 5.1.1 The email account that you tried to reach does not exist"),
            ("later@dest.example", "delayed", "4.2.2", "smtp; 452 4.2.2 over quota")));

        var report = Assert.Single(reports);
        Assert.Equal(new ReturnedReport(false, "gone@dest.example", "5.1.1", "550 5.1.1 The email account that you tried to reach does not exist"), report);
    }

    [Fact]
    public void A_feedback_report_yields_a_complaint_for_the_original_recipient()
    {
        var report = Assert.Single(Parse(Arf(originalRcptTo: "user@dest.example")));
        Assert.Equal(new ReturnedReport(true, "user@dest.example", null, "abuse"), report);

        // Without Original-Rcpt-To, the To of the returned original.
        Assert.Equal("victim@dest.example", Assert.Single(Parse(Arf(originalRcptTo: null))).Recipient);
    }

    [Fact]
    public void An_auto_reply_or_garbage_yields_nothing()
    {
        Assert.Empty(Parse("From: a@b.example\r\nTo: bounces+x@bounce.example\r\nSubject: Out of office\r\n\r\nI am away.\r\n"));
        Assert.Empty(Parse("\r\n\r\n"));
    }

    private static IReadOnlyList<ReturnedReport> Parse(string message) => ReturnedReportParser.Parse(new MemoryStream(Encoding.UTF8.GetBytes(message)));

    internal static string Dsn(params (string Recipient, string Action, string Status, string Diagnostic)[] recipients)
    {
        var groups = string.Concat(recipients.Select(r =>
            $"\r\nFinal-Recipient: rfc822; {r.Recipient}\r\nAction: {r.Action}\r\nStatus: {r.Status}\r\nDiagnostic-Code: {r.Diagnostic}\r\n"));
        return "From: MAILER-DAEMON@mx.dest.example\r\nTo: bounces+token@bounce.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            + "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n"
            + "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            + "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dest.example\r\n"
            + groups
            + "\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: app@origin.example\r\nTo: gone@dest.example\r\nSubject: hi\r\n\r\n--b1--\r\n";
    }

    internal static string Arf(string? originalRcptTo)
    {
        // RFC 5965 Appendix B.1, shortened.
        var rcpt = originalRcptTo is null ? string.Empty : $"Original-Rcpt-To: <{originalRcptTo}>\r\n";
        return "From: <abusedesk@dest.example>\r\nTo: <bounces+token@bounce.example>\r\nSubject: FW: Earn money\r\nMIME-Version: 1.0\r\n"
            + "Content-Type: multipart/report; report-type=feedback-report; boundary=\"part1_13d.2e68ed54_boundary\"\r\n\r\n"
            + "--part1_13d.2e68ed54_boundary\r\nContent-Type: text/plain; charset=\"US-ASCII\"\r\n\r\nThis is an email abuse report.\r\n"
            + "--part1_13d.2e68ed54_boundary\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
            + rcpt
            + "\r\n--part1_13d.2e68ed54_boundary\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
            + "From: <app@origin.example>\r\nTo: <victim@dest.example>\r\nSubject: Earn money\r\n\r\nSpam Spam Spam\r\n"
            + "--part1_13d.2e68ed54_boundary--\r\n";
    }
}
