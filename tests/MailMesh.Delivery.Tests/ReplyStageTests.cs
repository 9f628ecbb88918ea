using System.Text;
using MailMesh.Contracts;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// Each result says whose reply it is (RecipientResult.Stage): the destination's answer to MAIL, RCPT or the end of
/// data, or Local when MailMesh made it up. Queue suppresses an address only on a remote RCPT refusal.
/// </summary>
public sealed class ReplyStageTests
{
    private static byte[] Message() => Encoding.ASCII.GetBytes("From: sender@origin.test\r\nTo: rcpt@dest.test\r\nSubject: test\r\n\r\nHello.\r\n");

    [Fact]
    public async Task RCPT_refusals_are_Rcpt_and_the_end_of_data_reply_is_Data()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.RecipientReplies["nobody@dest.test"] = "550 5.1.1 No such user";
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "ok@dest.test", "nobody@dest.test"));

        Assert.Equal([ReplyStage.Data, ReplyStage.Rcpt], attempt.Results.Select(r => r.Stage));
    }

    [Fact]
    public async Task A_sender_refusal_at_MAIL_is_Mail()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.MailReply = "553 5.1.8 Sender domain does not exist";
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Bounced, "5.1.8", ReplyStage.Mail), (result.Outcome, result.EnhancedCode, result.Stage));
    }

    [Fact]
    public async Task Our_own_NXDOMAIN_and_null_MX_are_Local()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Dns.AddNullMx("nomail.test");
        var stored = f.Store(Message());

        var missing = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "missing.test", "a@missing.test"));
        Assert.Equal((DeliveryOutcome.Bounced, "5.1.2", ReplyStage.Local), (missing.Results[0].Outcome, missing.Results[0].EnhancedCode, missing.Results[0].Stage));

        var nullMx = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "nomail.test", "b@nomail.test"));
        Assert.Equal((DeliveryOutcome.Bounced, "5.1.10", ReplyStage.Local), (nullMx.Results[0].Outcome, nullMx.Results[0].EnhancedCode, nullMx.Results[0].Stage));
    }
}
