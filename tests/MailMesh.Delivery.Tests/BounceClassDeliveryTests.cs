using System.Text;
using MailMesh.Contracts;

namespace MailMesh.Delivery.Tests;

/// <summary>Every result an attempt records carries its bounce class: the destination's replies and MailMesh's own.</summary>
public sealed class BounceClassDeliveryTests
{
    private static byte[] Message() => Encoding.ASCII.GetBytes("From: sender@origin.test\r\nTo: rcpt@dest.test\r\nSubject: test\r\n\r\nHello.\r\n");

    [Fact]
    public async Task RCPT_replies_are_classified_and_deliveries_are_not()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.RecipientReplies["nobody@dest.test"] = "550 5.1.1 The email account that you tried to reach does not exist";
        f.Sink.RecipientReplies["slow@dest.test"] = "421 4.7.0 Our system has detected an unusual rate of unsolicited mail originating from your IP address, temporarily rate limited";
        var stored = f.Store(Message());

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "ok@dest.test", "nobody@dest.test", "slow@dest.test"));

        Assert.Equal([null, BounceClass.InvalidRecipient, BounceClass.Throttled], attempt.Results.Select(r => r.Class));
    }

    [Fact]
    public async Task The_end_of_data_reply_and_local_failures_are_classified()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.DataReply = "550 5.7.1 Our system has detected that this message is likely unsolicited mail";
        f.Dns.AddNullMx("nomail.test");
        var stored = f.Store(Message());

        var data = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "a@dest.test"));
        var nullMx = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "nomail.test", "b@nomail.test"));

        Assert.Equal((ReplyStage.Data, BounceClass.SpamContent), (data.Results[0].Stage, data.Results[0].Class));
        Assert.Equal((ReplyStage.Local, BounceClass.BadDomain), (nullMx.Results[0].Stage, nullMx.Results[0].Class));
    }
}
