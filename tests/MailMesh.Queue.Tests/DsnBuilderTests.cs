using System.Text;
using MailMesh.Storage;
using MimeKit;

namespace MailMesh.Queue.Tests;

public sealed class DsnBuilderTests
{
    private static readonly DateTimeOffset Now = new(2025, 3, 2, 8, 30, 0, TimeSpan.Zero);

    [Fact]
    public void Failure_DSN_is_a_delivery_status_report_with_the_original_attached()
    {
        var dsnId = Guid.NewGuid();
        var bytes = DsnBuilder.Build(Original(envelopeId: "QQ+2B314"), [Failed()], "mx.mailmesh.test", dsnId, Now, 1 << 20);

        // CRLF line ends throughout: no bare LF.
        for (var i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] == '\n')
            {
                Assert.Equal((byte)'\r', bytes[i - 1]);
            }
        }

        var message = MimeMessage.Load(new MemoryStream(bytes));
        Assert.Equal("MAILER-DAEMON@mx.mailmesh.test", message.From.Mailboxes.Single().Address);
        Assert.Equal("sender@origin.example", message.To.Mailboxes.Single().Address);
        Assert.Equal("auto-replied", message.Headers["Auto-Submitted"]);
        Assert.Equal(dsnId.ToString("N") + "@mx.mailmesh.test", message.MessageId);

        var report = Assert.IsType<MultipartReport>(message.Body);
        Assert.Equal("delivery-status", report.ReportType);
        Assert.Equal(3, report.Count);
        Assert.IsType<TextPart>(report[0]);
        var status = Assert.IsType<MessageDeliveryStatus>(report[1]);
        var returned = Assert.IsType<MessagePart>(report[2]);
        Assert.Equal("Quarterly report", returned.Message?.Subject);
        Assert.Contains("The numbers are in.", returned.Message?.TextBody ?? string.Empty, StringComparison.Ordinal);

        Assert.Equal(2, status.StatusGroups.Count(g => g.Count > 0));
        var perMessage = status.StatusGroups[0];
        Assert.Equal("dns; mx.mailmesh.test", perMessage["Reporting-MTA"]);
        Assert.Equal("QQ+314", perMessage["Original-Envelope-Id"]);
        Assert.NotNull(perMessage["Arrival-Date"]);

        var recipient = status.StatusGroups[1];
        Assert.Equal("rfc822; rcpt@dest.example", recipient["Final-Recipient"]);
        Assert.Equal("rfc822; Rcpt+tag@dest.example", recipient["Original-Recipient"]);
        Assert.Equal("failed", recipient["Action"]);
        Assert.Equal("5.1.1", recipient["Status"]);
        Assert.Equal("dns; mx.dest.example", recipient["Remote-MTA"]);
        Assert.Equal("smtp; 550 5.1.1 user unknown", recipient["Diagnostic-Code"]);
        Assert.NotNull(recipient["Last-Attempt-Date"]);
        Assert.Null(recipient["Will-Retry-Until"]);
    }

    [Fact]
    public void RET_HDRS_returns_only_the_headers()
    {
        var bytes = DsnBuilder.Build(Original(ret: "HDRS"), [Failed()], "mx.mailmesh.test", Guid.NewGuid(), Now, 1 << 20);
        var report = Assert.IsType<MultipartReport>(MimeMessage.Load(new MemoryStream(bytes)).Body);
        var headers = Assert.IsType<TextRfc822Headers>(report[2]);
        Assert.Equal("text/rfc822-headers", headers.ContentType.MimeType);
        Assert.Equal("Quarterly report", headers.Message?.Subject);
        Assert.DoesNotContain("The numbers are in.", Encoding.ASCII.GetString(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public void Large_original_is_truncated_to_its_headers()
    {
        var bytes = DsnBuilder.Build(Original(), [Failed()], "mx.mailmesh.test", Guid.NewGuid(), Now, maxReturnedSize: 64);
        var report = Assert.IsType<MultipartReport>(MimeMessage.Load(new MemoryStream(bytes)).Body);
        Assert.IsType<TextRfc822Headers>(report[2]);
    }

    [Fact]
    public void Delayed_entry_carries_Will_Retry_Until()
    {
        var delayed = Failed() with { Action = DsnAction.Delayed, Status = "4.4.1", ReplyCode = 451, ReplyText = "4.4.1 try later", WillRetryUntil = Now.AddDays(4) };
        var bytes = DsnBuilder.Build(Original(), [delayed], "mx.mailmesh.test", Guid.NewGuid(), Now, 1 << 20);
        var message = MimeMessage.Load(new MemoryStream(bytes));
        var status = Assert.IsType<MessageDeliveryStatus>(Assert.IsType<MultipartReport>(message.Body)[1]);
        Assert.Equal("delayed", status.StatusGroups[1]["Action"]);
        Assert.NotNull(status.StatusGroups[1]["Will-Retry-Until"]);
        Assert.Equal("smtp; 451 4.4.1 try later", status.StatusGroups[1]["Diagnostic-Code"]);
        Assert.Equal("Delayed Mail (still being retried)", message.Subject);
    }

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("a+2Bb", "a+b")]
    [InlineData("x+3Dy+2C", "x=y,")]
    [InlineData("bad+Z1", "bad+Z1")]
    public void Xtext_is_decoded(string xtext, string expected) => Assert.Equal(expected, DsnBuilder.DecodeXtext(xtext));

    [Fact]
    public void Deterministic_ids_are_stable_version_5_uuids()
    {
        var message = Guid.NewGuid();
        var lease = Guid.NewGuid();
        var id = DsnRequest.ReportId(message, lease);
        Assert.Equal(id, DsnRequest.ReportId(message, lease));
        Assert.NotEqual(id, DsnRequest.ReportId(message, Guid.NewGuid()));
        Assert.NotEqual(id, DsnRequest.DelayId(message, "dest.example"));
        Assert.Equal(DsnRequest.DelayId(message, "Dest.Example"), DsnRequest.DelayId(message, "dest.example"));
        Assert.Equal(5, id.Version);
    }

    [Theory]
    [InlineData(null, (int)NotifyConditions.Failure)]
    [InlineData("NEVER", (int)NotifyConditions.Never)]
    [InlineData("success,failure", (int)(NotifyConditions.Success | NotifyConditions.Failure))]
    [InlineData("DELAY", (int)NotifyConditions.Delay)]
    public void Notify_is_parsed(string? notify, int expected) => Assert.Equal((NotifyConditions)expected, DsnRequest.ParseNotify(notify));

    private static StoredMessage Original(string? ret = null, string? envelopeId = null) => new()
    {
        Id = Guid.NewGuid(),
        Sender = "sender@origin.example",
        Content = Encoding.ASCII.GetBytes(QueueTestHost.SampleMessage("sender@origin.example")),
        ReceivedAt = Now.AddHours(-1),
        Origin = MessageOrigin.Smtp,
        BodyType = BodyType.SevenBit,
        SmtpUtf8 = false,
        RequireTls = false,
        Ret = ret,
        EnvelopeId = envelopeId,
    };

    private static DsnRecipient Failed() => new()
    {
        Address = "rcpt@dest.example",
        OriginalRecipient = "rfc822;Rcpt+2Btag@dest.example",
        Action = DsnAction.Failed,
        Status = "5.1.1",
        RemoteMta = "mx.dest.example",
        ReplyCode = 550,
        ReplyText = "5.1.1 user unknown",
        LastAttemptAt = Now.AddMinutes(-1),
    };
}
