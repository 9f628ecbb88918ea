using System.Globalization;
using MailMesh.Contracts;

namespace MailMesh.Queue;

/// <summary>
/// Retry schedules per bounce class (section "Queue:Retry", <c>docs/delivery.md</c>): a deferral whose reply Delivery
/// classified as a listed <see cref="BounceClass"/> is retried on that class's curve instead of the global one. A class's
/// unset values are the global ones (Queue:FirstRetryDelay, BackoffMultiplier, MaxRetryDelay, MaxAge).
/// </summary>
public sealed class QueueRetryOptions
{
    /// <summary>
    /// The schedules by class name (Queue:Retry:Classes:&lt;Class&gt;:FirstRetryDelay and so on). Shipped defaults, which
    /// configuration overrides value by value: a full mailbox and a reputation block or rate limit clear in hours, not
    /// minutes, so retrying them on the global curve only adds to the pressure; a recipient that a server calls unknown
    /// with a 4xx (4.1.1) is usually unknown for good, so it is not kept for the whole queue lifetime.
    /// </summary>
    public Dictionary<string, RetryClassOptions> Classes { get; set; } = new(StringComparer.OrdinalIgnoreCase)
    {
        [nameof(BounceClass.QuotaIssues)] = new() { FirstRetryDelay = TimeSpan.FromMinutes(30), MaxRetryDelay = TimeSpan.FromHours(4) },
        [nameof(BounceClass.Throttled)] = new() { FirstRetryDelay = TimeSpan.FromMinutes(15), MaxRetryDelay = TimeSpan.FromHours(2) },
        [nameof(BounceClass.SpamBlock)] = new() { FirstRetryDelay = TimeSpan.FromMinutes(30), MaxRetryDelay = TimeSpan.FromHours(4) },
        [nameof(BounceClass.InvalidRecipient)] = new() { MaxAge = TimeSpan.FromDays(1) },
        [nameof(BounceClass.BadDomain)] = new() { MaxAge = TimeSpan.FromDays(1) },
    };

    /// <summary>The schedule for <paramref name="bounceClass"/>, or null for the global one.</summary>
    internal RetryClassOptions? For(BounceClass? bounceClass) =>
        bounceClass is { } cls && Classes.TryGetValue(Enum.GetName(cls) ?? string.Empty, out var options) ? options : null;

    internal IEnumerable<string> Validate(QueueOptions queue)
    {
        foreach (var (name, options) in Classes)
        {
            var prefix = $"{QueueOptions.SectionName}:Retry:Classes:{name}";
            if (!Enum.TryParse<BounceClass>(name, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed) || int.TryParse(name, NumberStyles.Integer, CultureInfo.InvariantCulture, out _))
            {
                yield return $"{prefix}: '{name}' is not a bounce class ({string.Join(", ", Enum.GetNames<BounceClass>())})";
                continue;
            }

            if (options is null)
            {
                continue;
            }

            foreach (var (key, value) in new[]
            {
                (nameof(RetryClassOptions.FirstRetryDelay), options.FirstRetryDelay),
                (nameof(RetryClassOptions.MaxRetryDelay), options.MaxRetryDelay),
                (nameof(RetryClassOptions.MaxAge), options.MaxAge),
            })
            {
                if (value is { } set && set <= TimeSpan.Zero)
                {
                    yield return $"{prefix}:{key}: must be positive (was {set})";
                }
            }

            var first = options.FirstRetryDelay ?? queue.FirstRetryDelay;
            var max = options.MaxRetryDelay ?? queue.MaxRetryDelay;
            if (first > TimeSpan.Zero && max > TimeSpan.Zero && first > max)
            {
                yield return $"{prefix}:FirstRetryDelay: must not exceed its MaxRetryDelay ({max}) (was {first})";
            }

            if (options.BackoffMultiplier is { } multiplier && (!double.IsFinite(multiplier) || multiplier < 1.0))
            {
                yield return $"{prefix}:BackoffMultiplier: must be a number of at least 1 (was {multiplier})";
            }
        }
    }
}

/// <summary>One bounce class's retry schedule (Queue:Retry:Classes:&lt;Class&gt;); unset values are the global ones.</summary>
public sealed class RetryClassOptions
{
    /// <summary>Delay before the first retry (the curve starts here whatever the attempt's number).</summary>
    public TimeSpan? FirstRetryDelay { get; set; }

    /// <summary>Each further retry waits this many times longer than the previous one.</summary>
    public double? BackoffMultiplier { get; set; }

    /// <summary>Upper bound of the delay between two attempts (before jitter).</summary>
    public TimeSpan? MaxRetryDelay { get; set; }

    /// <summary>
    /// How long a recipient deferred with this class may stay queued (counted from acceptance, like Queue:MaxAge, and never
    /// longer than it): a later deferral of this class expires it.
    /// </summary>
    public TimeSpan? MaxAge { get; set; }
}
