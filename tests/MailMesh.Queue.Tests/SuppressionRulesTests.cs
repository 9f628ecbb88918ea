using MailMesh.Contracts;
using MailMesh.Storage;

namespace MailMesh.Queue.Tests;

/// <summary>Only a destination's permanent refusal of the recipient at RCPT suppresses it.</summary>
public sealed class SuppressionRulesTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private static RecipientResult Result(int code, string enhanced, ReplyStage stage, DeliveryOutcome outcome = DeliveryOutcome.Bounced) => new()
    {
        RecipientId = 1,
        Address = "gone@dest.example",
        Outcome = outcome,
        ReplyCode = code,
        EnhancedCode = enhanced,
        ReplyText = "no",
        Stage = stage,
    };

    private static RecipientUpdate Update(RecipientResult result, RecipientState state = RecipientState.Bounced) => new()
    {
        RecipientId = result.RecipientId,
        State = state,
        AttemptedAt = Now,
        ReplyCode = result.ReplyCode,
        EnhancedCode = result.EnhancedCode,
        ReplyText = result.ReplyText,
        RemoteHost = "mx.dest.example",
    };

    [Theory]
    [InlineData(550, "5.1.1")] // no such mailbox
    [InlineData(550, "5.1.2")] // no such domain (said by a relay)
    [InlineData(553, "5.1.3")] // bad mailbox syntax
    [InlineData(551, "5.1.6")] // mailbox moved
    [InlineData(556, "5.1.10")] // null MX (RFC 7505), reported by a relay
    public void A_remote_permanent_recipient_error_at_RCPT_suppresses(int code, string enhanced)
    {
        var result = Result(code, enhanced, ReplyStage.Rcpt);
        Assert.True(SuppressionRules.ShouldSuppress(result, Update(result)));
    }

    [Theory]
    [InlineData(553, "5.1.7")] // bad sender mailbox syntax
    [InlineData(550, "5.1.8")] // bad sender system address
    [InlineData(550, "5.1.0")] // other address status: says not whose
    [InlineData(552, "5.2.2")] // mailbox full: passes
    [InlineData(554, "5.7.1")] // policy
    [InlineData(554, "5.6.3")] // content
    [InlineData(550, "5.0.0")]
    public void Other_remote_refusals_at_RCPT_do_not_suppress(int code, string enhanced)
    {
        var result = Result(code, enhanced, ReplyStage.Rcpt);
        Assert.False(SuppressionRules.ShouldSuppress(result, Update(result)));
    }

    [Theory]
    [InlineData(ReplyStage.Local)] // made up by MailMesh: our own NXDOMAIN, connection or TLS failure, config error
    [InlineData(ReplyStage.Mail)] // a reply to MAIL FROM is about the sender
    [InlineData(ReplyStage.Data)] // the end-of-data reply answers for every recipient at once
    public void A_recipient_status_that_is_not_a_reply_to_RCPT_does_not_suppress(ReplyStage stage)
    {
        var result = Result(550, "5.1.1", stage);
        Assert.False(SuppressionRules.ShouldSuppress(result, Update(result)));
    }

    [Fact]
    public void Only_bounced_recipients_are_suppressed()
    {
        var deferred = Result(450, "4.1.1", ReplyStage.Rcpt, DeliveryOutcome.Deferred);
        Assert.False(SuppressionRules.ShouldSuppress(deferred, Update(deferred, RecipientState.Deferred)));

        var expired = Result(550, "5.1.1", ReplyStage.Rcpt);
        Assert.False(SuppressionRules.ShouldSuppress(expired, Update(expired, RecipientState.Expired)));
        Assert.False(SuppressionRules.ShouldSuppress(null, Update(expired)));
    }

    [Fact]
    public void The_suppression_has_the_reply_as_reason_and_source_bounce_without_expiry()
    {
        var result = Result(550, "5.1.1", ReplyStage.Rcpt);
        var suppression = SuppressionRules.Suppression("gone@dest.example", Update(result), Now);
        Assert.Equal(SuppressionSources.Bounce, suppression.Source);
        Assert.Equal("hard bounce 550 5.1.1 no (mx.dest.example)", suppression.Reason);
        Assert.Null(suppression.ExpiresAt);
        Assert.Equal(Now, suppression.CreatedAt);
    }
}
