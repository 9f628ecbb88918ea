using MailMesh.Contracts;
using MailMesh.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Tests;

/// <summary>
/// The bounce class drives Queue (issue 11): the retry curve per class (Queue:Retry:Classes), expiry per class, the
/// suppression of hard classes only, and the class on the stored state and the MessageEvent.
/// </summary>
public sealed class BounceClassTests
{
    private static readonly DateTimeOffset Received = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static RecipientResult Result(DeliveryOutcome outcome, int code, string enhanced, BounceClass? cls, ReplyStage stage = ReplyStage.Rcpt) => new()
    {
        RecipientId = 1,
        Address = "a@dest.example",
        Outcome = outcome,
        ReplyCode = code,
        EnhancedCode = enhanced,
        ReplyText = "text",
        Stage = stage,
        Class = cls,
    };

    [Theory]
    [InlineData(null, 1, 5)]
    [InlineData(BounceClass.TransientFailure, 1, 5)] // no schedule of its own: the global curve
    [InlineData(BounceClass.QuotaIssues, 1, 30)]
    [InlineData(BounceClass.QuotaIssues, 3, 120)]
    [InlineData(BounceClass.QuotaIssues, 10, 240)]
    [InlineData(BounceClass.Throttled, 1, 15)]
    [InlineData(BounceClass.Throttled, 4, 120)]
    [InlineData(BounceClass.SpamBlock, 2, 60)]
    [InlineData(BounceClass.InvalidRecipient, 1, 5)] // shorter life, same curve
    public void The_shipped_schedules_retry_quota_and_reputation_slower(BounceClass? cls, int attempt, int minutes)
    {
        var schedule = new RetrySchedule(new QueueOptions(), () => 0.5);
        Assert.Equal(TimeSpan.FromMinutes(minutes), schedule.BaseDelay(attempt, cls));
    }

    [Fact]
    public void A_deferral_is_scheduled_on_its_class_curve_and_the_update_carries_the_class()
    {
        var schedule = new RetrySchedule(new QueueOptions { Jitter = 0 }, () => 0.5);
        var now = Received.AddMinutes(1);

        var update = schedule.Decide(Result(DeliveryOutcome.Deferred, 421, "4.7.0", BounceClass.Throttled), 1, Received, now, "mx");

        Assert.Equal((RecipientState.Deferred, now + TimeSpan.FromMinutes(15), "Throttled"), (update.State, update.NextAttemptAt, update.BounceClass));
    }

    [Fact]
    public void A_4xx_unknown_user_expires_after_its_class_MaxAge_and_the_expiry_is_MessageExpired()
    {
        var schedule = new RetrySchedule(new QueueOptions { Jitter = 0 }, () => 0.5);
        var result = Result(DeliveryOutcome.Deferred, 450, "4.1.1", BounceClass.InvalidRecipient);

        // 23 h after acceptance the next try (in an hour at most) is still inside the class's one day ...
        var early = schedule.Decide(result, 2, Received, Received.AddHours(23) - TimeSpan.FromMinutes(11), "mx");
        Assert.Equal(RecipientState.Deferred, early.State);

        // ... after it, a transient failure of another class would still be retried for days.
        var late = schedule.Decide(result, 8, Received, Received.AddHours(23) + TimeSpan.FromMinutes(30), "mx");
        Assert.Equal((RecipientState.Expired, "MessageExpired"), (late.State, late.BounceClass));
        var other = schedule.Decide(result with { Class = BounceClass.TransientFailure }, 8, Received, Received.AddHours(23) + TimeSpan.FromMinutes(30), "mx");
        Assert.Equal(RecipientState.Deferred, other.State);
    }

    [Fact]
    public void A_bounce_keeps_its_class_and_a_delivery_has_none()
    {
        var schedule = new RetrySchedule(new QueueOptions(), () => 0.5);
        Assert.Equal("SpamBlock", schedule.Decide(Result(DeliveryOutcome.Bounced, 550, "5.7.1", BounceClass.SpamBlock), 1, Received, Received, "mx").BounceClass);
        Assert.Null(schedule.Decide(Result(DeliveryOutcome.Delivered, 250, "2.0.0", null), 1, Received, Received, "mx").BounceClass);
    }

    [Fact]
    public void Configuration_overrides_a_shipped_schedule_value_by_value_and_adds_classes()
    {
        var options = Bind(new Dictionary<string, string?>
        {
            ["Queue:Retry:Classes:QuotaIssues:FirstRetryDelay"] = "01:00:00",
            ["Queue:Retry:Classes:policyrelated:FirstRetryDelay"] = "00:20:00",
            ["Queue:Retry:Classes:PolicyRelated:MaxAge"] = "2.00:00:00",
        });

        Assert.Empty(options.Validate());
        var quota = options.Retry.Classes["QuotaIssues"];
        Assert.Equal((TimeSpan.FromHours(1), TimeSpan.FromHours(4)), (quota.FirstRetryDelay, quota.MaxRetryDelay));
        Assert.Equal(TimeSpan.FromMinutes(20), options.Retry.Classes["PolicyRelated"].FirstRetryDelay);
        Assert.Equal(TimeSpan.FromDays(2), options.Retry.Classes["PolicyRelated"].MaxAge);
        Assert.Equal(TimeSpan.FromMinutes(15), options.Retry.Classes["Throttled"].FirstRetryDelay);
    }

    [Theory]
    [InlineData("Queue:Retry:Classes:NoSuchClass:FirstRetryDelay", "00:10:00", "Queue:Retry:Classes:NoSuchClass: 'NoSuchClass' is not a bounce class")]
    [InlineData("Queue:Retry:Classes:Throttled:FirstRetryDelay", "-00:10:00", "Queue:Retry:Classes:Throttled:FirstRetryDelay: must be positive")]
    [InlineData("Queue:Retry:Classes:Throttled:FirstRetryDelay", "05:00:00", "Queue:Retry:Classes:Throttled:FirstRetryDelay: must not exceed its MaxRetryDelay")]
    [InlineData("Queue:Retry:Classes:Throttled:BackoffMultiplier", "0.5", "Queue:Retry:Classes:Throttled:BackoffMultiplier: must be a number of at least 1")]
    [InlineData("Queue:Retry:Classes:Throttled:MaxAge", "00:00:00", "Queue:Retry:Classes:Throttled:MaxAge: must be positive")]
    [InlineData("Queue:SuppressBounceClasses:0", "Spam", "Queue:SuppressBounceClasses:0: 'Spam' is not a bounce class")]
    public void Bad_class_settings_are_refused_naming_the_key(string key, string value, string expected)
    {
        var errors = Bind(new Dictionary<string, string?> { [key] = value }).Validate().ToList();
        Assert.Contains(errors, e => e.StartsWith(expected, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(550, "5.1.1", BounceClass.InvalidRecipient, true)]
    [InlineData(550, "5.1.2", BounceClass.BadDomain, true)]
    // The words said spam or reputation block: never the address's fault, whatever the code.
    [InlineData(550, "5.1.1", BounceClass.SpamBlock, false)]
    [InlineData(554, "5.7.1", BounceClass.SpamBlock, false)]
    [InlineData(550, "5.7.1", BounceClass.SpamContent, false)]
    [InlineData(552, "5.2.2", BounceClass.QuotaIssues, false)]
    // The class decides, not the code: Microsoft says "550 5.5.0 mailbox unavailable" for an unknown user.
    [InlineData(550, "5.5.0", BounceClass.InvalidRecipient, true)]
    public void Suppression_follows_the_class(int code, string enhanced, BounceClass cls, bool suppressed)
    {
        var result = Result(DeliveryOutcome.Bounced, code, enhanced, cls);
        var update = new RecipientUpdate { RecipientId = 1, State = RecipientState.Bounced, AttemptedAt = Received };
        Assert.Equal(suppressed, SuppressionRules.ShouldSuppress(result, update, new QueueOptions().SuppressingClasses));
    }

    [Fact]
    public void Suppressing_classes_are_configurable_and_never_apply_to_a_local_or_non_RCPT_reply()
    {
        var options = Bind(new Dictionary<string, string?> { ["Queue:SuppressBounceClasses:0"] = "InactiveMailbox" });
        var update = new RecipientUpdate { RecipientId = 1, State = RecipientState.Bounced, AttemptedAt = Received };

        Assert.True(SuppressionRules.ShouldSuppress(Result(DeliveryOutcome.Bounced, 550, "5.2.1", BounceClass.InactiveMailbox), update, options.SuppressingClasses));
        Assert.False(SuppressionRules.ShouldSuppress(Result(DeliveryOutcome.Bounced, 550, "5.1.1", BounceClass.InvalidRecipient), update, options.SuppressingClasses));
        Assert.False(SuppressionRules.ShouldSuppress(Result(DeliveryOutcome.Bounced, 550, "5.1.2", BounceClass.BadDomain, ReplyStage.Local), update, null));
        Assert.False(SuppressionRules.ShouldSuppress(Result(DeliveryOutcome.Bounced, 550, "5.1.1", BounceClass.InvalidRecipient, ReplyStage.Data), update, null));
    }

    [Theory]
    [InlineData(BounceClass.InvalidRecipient, true)]
    [InlineData(BounceClass.SpamBlock, false)]
    public async Task An_applied_result_stores_the_class_announces_it_and_suppresses_only_hard_classes(BounceClass cls, bool suppressed)
    {
        await using var host = await QueueTestHost.StartAsync();
        var id = await host.StoreAsync(recipients: [new NewRecipient { Address = "gone@dest.example" }]);
        var job = await host.ClaimAsync(id);
        var attempt = DeliveryAttemptedConsumerTests.Attempt(job, DeliveryOutcome.Bounced, 550, "5.1.1", "no");
        attempt = attempt with { Results = [.. attempt.Results.Select(r => r with { Class = cls })] };

        await host.Harness.Bus.Publish(attempt);
        await DeliveryAttemptedConsumerTests.ConsumedAsync(host, job.LeaseId, 1);

        var recipient = Assert.Single((await host.Spool.GetStatusAsync(id, default))!.Recipients);
        Assert.Equal(cls.ToString(), recipient.LastBounceClass);
        Assert.Contains(host.Probe.Published<MessageEvent>(), e => e.MessageId == id && e.Type == MessageEventType.Bounced && e.Class == cls);
        Assert.Equal(suppressed, await host.PolicyStore.GetSuppressionAsync("gone@dest.example", default) is not null);
    }

    [Fact]
    public async Task A_throttled_deferral_waits_for_its_class_delay()
    {
        await using var host = await QueueTestHost.StartAsync(o => o.Jitter = 0);
        var id = await host.StoreAsync();
        var job = await host.ClaimAsync(id);
        var attempt = DeliveryAttemptedConsumerTests.Attempt(job, DeliveryOutcome.Deferred, 421, "4.7.0", "rate limited");
        attempt = attempt with { Results = [.. attempt.Results.Select(r => r with { Class = BounceClass.Throttled })] };

        await host.Harness.Bus.Publish(attempt);
        await DeliveryAttemptedConsumerTests.ConsumedAsync(host, job.LeaseId, 1);

        var recipient = Assert.Single((await host.Spool.GetStatusAsync(id, default))!.Recipients);
        Assert.Equal((RecipientState.Deferred, host.Time.GetUtcNow() + TimeSpan.FromMinutes(15), "Throttled"), (recipient.State, recipient.NextAttemptAt, recipient.LastBounceClass));
        Assert.Contains(host.Probe.Published<MessageEvent>(), e => e.Type == MessageEventType.Deferred && e.Class == BounceClass.Throttled);
    }

    private static QueueOptions Bind(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration);
        services.AddOptions<QueueOptions>().BindConfiguration(QueueOptions.SectionName);
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<QueueOptions>>().Value;
    }
}
