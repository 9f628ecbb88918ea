using MailMesh.Contracts;
using MailMesh.Storage;

namespace MailMesh.Queue.Tests;

public sealed class RetryScheduleTests
{
    private static readonly DateTimeOffset Received = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(1, 5)]
    [InlineData(2, 10)]
    [InlineData(3, 20)]
    [InlineData(4, 40)]
    [InlineData(5, 60)]
    [InlineData(6, 60)]
    [InlineData(1000, 60)]
    [InlineData(int.MaxValue, 60)]
    public void BaseDelay_doubles_from_the_first_retry_delay_up_to_the_cap(int attempt, int minutes)
    {
        var schedule = new RetrySchedule(new QueueOptions(), () => 0.5);
        Assert.Equal(TimeSpan.FromMinutes(minutes), schedule.BaseDelay(attempt));
    }

    [Theory]
    [InlineData(0.0, 0.8)]
    [InlineData(0.5, 1.0)]
    [InlineData(0.999999, 1.2)]
    public void NextDelay_scales_by_the_jitter_fraction(double sample, double factor)
    {
        var schedule = new RetrySchedule(new QueueOptions { Jitter = 0.2 }, () => sample);
        var expected = TimeSpan.FromMinutes(5 * factor);
        Assert.InRange(schedule.NextDelay(1), expected - TimeSpan.FromSeconds(1), expected + TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void NextDelay_with_random_jitter_stays_within_bounds()
    {
        var random = new Random(1234);
        var schedule = new RetrySchedule(new QueueOptions { Jitter = 0.2 }, random.NextDouble);
        for (var attempt = 1; attempt <= 10; attempt++)
        {
            var baseDelay = schedule.BaseDelay(attempt);
            for (var i = 0; i < 200; i++)
            {
                Assert.InRange(schedule.NextDelay(attempt), baseDelay * 0.8, baseDelay * 1.2);
            }
        }
    }

    [Fact]
    public void Deferred_result_is_scheduled_after_the_backoff()
    {
        var schedule = new RetrySchedule(new QueueOptions { Jitter = 0 }, () => 0.5);
        var now = Received.AddMinutes(7);
        var update = schedule.Decide(Result(DeliveryOutcome.Deferred, 451, "4.4.1"), attempt: 2, Received, now, "mx.dest.example");

        Assert.Equal(RecipientState.Deferred, update.State);
        Assert.Equal(now + TimeSpan.FromMinutes(10), update.NextAttemptAt);
        Assert.Equal(451, update.ReplyCode);
        Assert.Equal("mx.dest.example", update.RemoteHost);
    }

    [Fact]
    public void Deferred_result_whose_next_attempt_would_pass_MaxAge_expires()
    {
        var schedule = new RetrySchedule(new QueueOptions { Jitter = 0 }, () => 0.5);

        // 4 days 23:30 old; the next attempt (60 min) would land after 5 days.
        var now = Received + TimeSpan.FromDays(5) - TimeSpan.FromMinutes(30);
        var update = schedule.Decide(Result(DeliveryOutcome.Deferred, 451, "4.4.1"), attempt: 30, Received, now, null);
        Assert.Equal(RecipientState.Expired, update.State);
        Assert.Null(update.NextAttemptAt);

        // 4 days 22:00 old: still time for one more attempt.
        var earlier = Received + TimeSpan.FromDays(5) - TimeSpan.FromHours(2);
        Assert.Equal(RecipientState.Deferred, schedule.Decide(Result(DeliveryOutcome.Deferred, 451, "4.4.1"), 30, Received, earlier, null).State);
    }

    [Theory]
    [InlineData(DeliveryOutcome.Delivered, RecipientState.Delivered)]
    [InlineData(DeliveryOutcome.Bounced, RecipientState.Bounced)]
    public void Final_outcomes_map_to_final_states(DeliveryOutcome outcome, RecipientState state)
    {
        var schedule = new RetrySchedule(new QueueOptions(), () => 0.5);
        var update = schedule.Decide(Result(outcome, 250, "2.0.0"), 1, Received, Received, null);
        Assert.Equal(state, update.State);
        Assert.Null(update.NextAttemptAt);
    }

    [Fact]
    public void Options_validation_names_each_key()
    {
        var options = new QueueOptions
        {
            MaxAge = TimeSpan.Zero,
            Jitter = 1.5,
            BackoffMultiplier = 0.5,
            ClaimBatchSize = 0,
            ClaimInterval = TimeSpan.FromSeconds(1),
            DispatchBatchSize = 65,
            FirstRetryDelay = TimeSpan.FromHours(2),
            Hostname = "not a host",
        };

        var failures = options.Validate().ToList();
        Assert.Contains(failures, f => f.StartsWith("Queue:MaxAge: must be positive", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Queue:Jitter: ", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Queue:BackoffMultiplier: ", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Queue:ClaimBatchSize: ", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Queue:ClaimInterval: must be zero or more and less than Queue:PollInterval", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Queue:DispatchBatchSize: must be between 1 and 64", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Queue:FirstRetryDelay: must not exceed", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Queue:Hostname: ", StringComparison.Ordinal));
        Assert.Empty(new QueueOptions().Validate());
    }

    [Fact]
    public void A_work_item_handed_back_by_a_stopping_Delivery_is_due_at_once_and_counts_no_attempt()
    {
        // A batched item not started when its Delivery replica stopped comes back not attempted until now.
        var schedule = new RetrySchedule(new QueueOptions(), () => 0.5);
        var now = Received.AddMinutes(3);
        var handedBack = Result(DeliveryOutcome.Deferred, 451, "4.3.2") with { NotAttemptedUntil = now };

        var update = schedule.Decide(handedBack, attempt: 2, Received, now, null);

        Assert.Equal((RecipientState.Deferred, now, true), (update.State, update.NextAttemptAt, update.NotAttempted));
    }

    [Fact]
    public void A_result_not_attempted_does_not_advance_the_backoff_and_is_marked_for_the_spool()
    {
        // Issue 11: every address of the message's IP pool was at its warm-up cap; Delivery never connected.
        var schedule = new RetrySchedule(new QueueOptions { Jitter = 0 }, () => 0.5);
        var now = Received.AddMinutes(7);
        var notAttempted = Result(DeliveryOutcome.Deferred, 451, "4.7.0") with { NotAttempted = true };

        var first = schedule.Decide(notAttempted, attempt: 1, Received, now, null);
        var third = schedule.Decide(notAttempted, attempt: 3, Received, now, null);

        Assert.Equal((RecipientState.Deferred, now + TimeSpan.FromMinutes(5), true), (first.State, first.NextAttemptAt, first.NotAttempted));
        Assert.Equal(now + TimeSpan.FromMinutes(10), third.NextAttemptAt);
        Assert.False(schedule.Decide(Result(DeliveryOutcome.Deferred, 451, "4.4.1"), attempt: 1, Received, now, null).NotAttempted);

        // Past the queue lifetime it still expires.
        var expired = schedule.Decide(notAttempted, attempt: 1, Received, Received + TimeSpan.FromDays(5), null);
        Assert.Equal((RecipientState.Expired, false), (expired.State, expired.NotAttempted));
    }

    private static RecipientResult Result(DeliveryOutcome outcome, int code, string enhanced) => new()
    {
        RecipientId = 1,
        Address = "rcpt@dest.example",
        Outcome = outcome,
        ReplyCode = code,
        EnhancedCode = enhanced,
        ReplyText = "reply",
    };
}

/// <summary>Traffic shaping's held-back work (issue 11): deferred until Delivery said, and not counted as an attempt.</summary>
public sealed class NotAttemptedScheduleTests
{
    private static readonly DateTimeOffset Received = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static RecipientResult Held(DateTimeOffset until) => new()
    {
        RecipientId = 7,
        Address = "a@gmail.com",
        Outcome = DeliveryOutcome.Deferred,
        ReplyCode = 451,
        EnhancedCode = "4.4.5",
        ReplyText = "Not attempted (traffic shaping): site google is suspended",
        NotAttemptedUntil = until,
    };

    [Fact]
    public void A_result_not_attempted_is_deferred_until_the_time_delivery_gave_and_marked_not_attempted()
    {
        var schedule = new RetrySchedule(new QueueOptions(), () => 0.5);
        var now = Received + TimeSpan.FromHours(1);
        var update = schedule.Decide(Held(now + TimeSpan.FromMinutes(15)), attempt: 9, Received, now, remoteHost: null);
        Assert.Equal(RecipientState.Deferred, update.State);
        Assert.Equal(now + TimeSpan.FromMinutes(15), update.NextAttemptAt);
        Assert.True(update.NotAttempted);

        // An ordinary deferral is an attempt.
        Assert.False(schedule.Decide(Held(now) with { NotAttemptedUntil = null }, 1, Received, now, null).NotAttempted);
    }

    [Fact]
    public void Held_work_still_expires_at_the_queue_lifetime()
    {
        var schedule = new RetrySchedule(new QueueOptions { MaxAge = TimeSpan.FromDays(1) }, () => 0.5);
        var now = Received + TimeSpan.FromHours(23.9);
        var update = schedule.Decide(Held(now + TimeSpan.FromMinutes(15)), 3, Received, now, null);
        Assert.Equal(RecipientState.Expired, update.State);
        Assert.Equal("MessageExpired", update.BounceClass);
    }
}
