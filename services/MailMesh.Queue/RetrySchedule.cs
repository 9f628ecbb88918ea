using MailMesh.Contracts;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>
/// Decides what an attempt's result means for a recipient: final, or deferred until when, or expired. Pure: the clock
/// and the random source come from the caller, so the schedule is testable without waiting.
/// </summary>
internal sealed class RetrySchedule
{
    private readonly QueueOptions _options;
    private readonly Func<double> _sample;

    public RetrySchedule(IOptions<QueueOptions> options)
        : this(options.Value, Random.Shared.NextDouble)
    {
    }

    /// <param name="sample">Returns a uniformly distributed number in [0, 1).</param>
    internal RetrySchedule(QueueOptions options, Func<double> sample)
    {
        _options = options;
        _sample = sample;
    }

    /// <summary>
    /// The delay after failed attempt number <paramref name="attempt"/> (1 for the first), before jitter:
    /// FirstRetryDelay × BackoffMultiplier^(attempt-1), capped at MaxRetryDelay; each value the one of the reply's bounce
    /// class (Queue:Retry:Classes:&lt;Class&gt;) where it has one, else the global one.
    /// </summary>
    public TimeSpan BaseDelay(int attempt, BounceClass? bounceClass = null)
    {
        var perClass = _options.Retry.For(bounceClass);
        var first = perClass?.FirstRetryDelay ?? _options.FirstRetryDelay;
        var multiplier = perClass?.BackoffMultiplier ?? _options.BackoffMultiplier;
        var cap = perClass?.MaxRetryDelay ?? _options.MaxRetryDelay;
        var exponent = Math.Max(0, attempt - 1);
        var seconds = first.TotalSeconds * Math.Pow(multiplier, exponent);

        // Pow overflows to +∞ long before an int attempt count runs out; the cap handles it.
        return double.IsFinite(seconds) && seconds < cap.TotalSeconds ? TimeSpan.FromSeconds(seconds) : cap;
    }

    /// <summary>The jittered delay: <see cref="BaseDelay"/> scaled by a random factor in [1 - Jitter, 1 + Jitter).</summary>
    public TimeSpan NextDelay(int attempt, BounceClass? bounceClass = null)
    {
        var delay = BaseDelay(attempt, bounceClass);
        var factor = 1.0 + (_options.Jitter * ((2.0 * _sample()) - 1.0));
        return TimeSpan.FromTicks((long)(delay.Ticks * factor));
    }

    /// <summary>
    /// The recipient's new state after <paramref name="result"/>. A deferral whose next attempt would fall after
    /// MaxAge expires the recipient now rather than holding it for an attempt that may never be made
    /// (RFC 5321 §4.5.4.1: give up after the queue lifetime, and report it). The update carries the result's bounce
    /// class; an expiry's is <see cref="BounceClass.MessageExpired"/>.
    /// </summary>
    public RecipientUpdate Decide(RecipientResult result, int attempt, DateTimeOffset receivedAt, DateTimeOffset now, string? remoteHost)
    {
        var (state, next) = result.Outcome switch
        {
            DeliveryOutcome.Delivered => (RecipientState.Delivered, (DateTimeOffset?)null),
            DeliveryOutcome.Bounced => (RecipientState.Bounced, null),
            _ when result.NotAttemptedUntil is { } until => Hold(until, result.Class, receivedAt, now),

            // Not tried (an IP pool's warm-up caps): retried after the previous attempt's delay, so the curve does not advance.
            _ => Defer(result.NotAttempted ? attempt - 1 : attempt, result.Class, receivedAt, now),
        };

        return new RecipientUpdate
        {
            RecipientId = result.RecipientId,
            State = state,
            NextAttemptAt = next,
            AttemptedAt = now,
            ReplyCode = result.ReplyCode,
            EnhancedCode = result.EnhancedCode,
            ReplyText = result.ReplyText,
            RemoteHost = remoteHost,
            BounceClass = state == RecipientState.Expired ? nameof(BounceClass.MessageExpired)
                : result.Class is { } cls ? Enum.GetName(cls)
                : null,
            // Not tried (warm-up caps, traffic shaping): the claim's attempt is taken back and no history row is written.
            NotAttempted = (result.NotAttempted || result.NotAttemptedUntil is not null) && state == RecipientState.Deferred,
        };
    }

    /// <summary>
    /// Traffic shaping held the recipient back (docs/delivery.md, "Traffic shaping"): deferred until Delivery said, not
    /// counted as an attempt, and never past MaxAge (expired then, as any deferral would be).
    /// </summary>
    private (RecipientState, DateTimeOffset?) Hold(DateTimeOffset until, BounceClass? bounceClass, DateTimeOffset receivedAt, DateTimeOffset now)
    {
        var maxAge = _options.Retry.For(bounceClass)?.MaxAge is { } classMaxAge && classMaxAge < _options.MaxAge ? classMaxAge : _options.MaxAge;
        var next = until > now ? until : now;
        return next - receivedAt > maxAge ? (RecipientState.Expired, null) : (RecipientState.Deferred, next);
    }

    private (RecipientState, DateTimeOffset?) Defer(int attempt, BounceClass? bounceClass, DateTimeOffset receivedAt, DateTimeOffset now)
    {
        var delay = NextDelay(attempt, bounceClass);
        var maxAge = _options.Retry.For(bounceClass)?.MaxAge is { } classMaxAge && classMaxAge < _options.MaxAge ? classMaxAge : _options.MaxAge;
        return now - receivedAt + delay > maxAge
            ? (RecipientState.Expired, null)
            : (RecipientState.Deferred, now + delay);
    }
}
