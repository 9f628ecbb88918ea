using MailMesh.ServiceDefaults;

namespace MailMesh.Queue;

/// <summary>
/// The queue manager's schedule (section "Queue").
/// </summary>
/// <remarks>
/// The retry schedule follows the spirit of Postfix (<c>minimal_backoff_time</c> 300 s, <c>maximal_backoff_time</c>
/// 4000 s) and KumoMTA (exponential back-off from an initial interval): the n-th retry waits
/// <c>FirstRetryDelay × BackoffMultiplier^(n-1)</c>, capped at <c>MaxRetryDelay</c>, scaled by a random factor in
/// <c>[1 - Jitter, 1 + Jitter]</c> so recipients deferred together by one outage do not all return at one instant.
/// With the defaults: 5 min, 10 min, 20 min, 40 min, then hourly until <c>MaxAge</c> (5 days, Postfix
/// <c>maximal_queue_lifetime</c>; RFC 5321 §4.5.4.1 asks for "at least 4-5 days").
/// </remarks>
public sealed class QueueOptions : IValidatedOptions
{
    public static string SectionName => "Queue";

    /// <summary>How long a message may stay in the queue before its undelivered recipients expire (RFC 5321 §4.5.4.1).</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromDays(5);

    /// <summary>Delay before the first retry of a deferred recipient.</summary>
    public TimeSpan FirstRetryDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Each further retry waits this many times longer than the previous one.</summary>
    public double BackoffMultiplier { get; set; } = 2.0;

    /// <summary>Upper bound of the delay between two attempts (before jitter).</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Fraction of the delay by which each retry is randomly moved earlier or later (0 disables jitter).</summary>
    public double Jitter { get; set; } = 0.2;

    /// <summary>How often the scheduler looks for due work when nothing pokes it.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// While pokes keep coming (announcements of new mail, applied results), a round starts at least this long after the
    /// previous one started; the pokes that arrive meanwhile are served by that one round. A poke after a quiet spell, and
    /// the round after a full batch, claim at once. Each round costs one claim statement whether it takes one job or
    /// fifty: at 740 mails a second the scheduler claimed 40 times a second, and most rounds found the destination's
    /// window full (issue 8). Zero claims at every poke.
    /// </summary>
    public TimeSpan ClaimInterval { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Most recipients claimed in one round trip to the spool.</summary>
    public int ClaimBatchSize { get; set; } = 500;

    /// <summary>
    /// How long Delivery may hold claimed recipients. A work item whose bus message is lost, or whose worker died, is
    /// claimed again when its lease expires.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Age after which a still-deferred recipient that asked for NOTIFY=DELAY gets a delay DSN (RFC 3461 §4.1).</summary>
    public TimeSpan DelayNotifyAfter { get; set; } = TimeSpan.FromHours(4);

    /// <summary>Completed messages (every recipient final) are deleted from the spool this long after completion.</summary>
    public TimeSpan PurgeCompletedAfter { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How often completed messages are purged.</summary>
    public TimeSpan PurgeInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Originals larger than this are returned in a DSN as headers only (text/rfc822-headers), whatever RET asked
    /// (Postfix <c>bounce_size_limit</c> does the same).
    /// </summary>
    public long DsnMaxReturnedSize { get; set; } = 256 * 1024;

    /// <summary>
    /// Add a recipient to the suppression list when it bounces with an RFC 3463 5.1.x status (no such mailbox or
    /// domain), so Policy refuses later mail to it at RCPT (550 5.1.1) instead of sending it to bounce again.
    /// </summary>
    public bool SuppressHardBounces { get; set; } = true;

    /// <summary>
    /// The bounce classes whose permanent refusal at RCPT suppresses the address (with SuppressHardBounces). Unset:
    /// InvalidRecipient and BadDomain. Spam, reputation, policy and quota refusals say nothing lasting about the address
    /// and never suppress it unless listed here.
    /// </summary>
    public List<string>? SuppressBounceClasses { get; set; }

    /// <summary>Retry schedules per bounce class: section "Queue:Retry".</summary>
    public QueueRetryOptions Retry { get; set; } = new();

    /// <summary>The classes that suppress: <see cref="SuppressBounceClasses"/>, or the default.</summary>
    internal IReadOnlySet<Contracts.BounceClass> SuppressingClasses =>
        _suppressing ??= SuppressBounceClasses is { Count: > 0 } names
            ? names.Select(n => Enum.TryParse<Contracts.BounceClass>(n, ignoreCase: true, out var c) ? c : (Contracts.BounceClass?)null)
                .OfType<Contracts.BounceClass>().ToHashSet()
            : DefaultSuppressingClasses;

    private static readonly HashSet<Contracts.BounceClass> DefaultSuppressingClasses =
        [Contracts.BounceClass.InvalidRecipient, Contracts.BounceClass.BadDomain];

    private IReadOnlySet<Contracts.BounceClass>? _suppressing;

    /// <summary>The name this MTA reports in DSNs (Reporting-MTA, MAILER-DAEMON@...); the machine's host name when empty.</summary>
    public string? Hostname { get; set; }

    /// <summary>
    /// The in-flight window: most jobs (one message at one domain) claimed and not yet finished, across every Queue
    /// replica, work waiting in the broker included. Size it to what Delivery can work on at once (replicas ×
    /// <c>Delivery:ConcurrentDeliveries</c>, a little more to keep them busy), so claimed work never waits in RabbitMQ
    /// long enough for its lease to expire.
    /// </summary>
    public int MaxJobsInFlight { get; set; } = 512;

    /// <summary>The in-flight window per destination domain (like Postfix's per-destination concurrency limit).</summary>
    public int MaxJobsInFlightPerDomain { get; set; } = 64;

    /// <summary>
    /// Most work items (jobs) in one <c>DeliverMessages</c> bus message. The jobs of a claim are split into batches of
    /// nearly equal size, none larger than this; a claim of one job sends a plain <c>DeliverMessage</c>. Larger batches
    /// cost the broker less per mail; smaller ones spread a burst over more Delivery replicas (each batch goes to one), and
    /// a Delivery replica holds up to <c>Delivery:ConcurrentDeliveries</c> batches while it attempts that many jobs at
    /// once. 1 sends every job alone (for a Delivery older than batches). At most 64.
    /// </summary>
    public int DispatchBatchSize { get; set; } = 8;

    /// <summary>Longest the scheduler and the result applier wait for one spool call before the round fails and is retried.</summary>
    public TimeSpan StoreTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest the scheduler waits for one publish to the bus (a broker that is down or blocked).</summary>
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Failed rounds are retried after PollInterval × 2^(failures - 1), capped here, with jitter: back-off, not a
    /// reconnect storm, while the database or the broker restarts.
    /// </summary>
    public TimeSpan MaxRoundBackoff { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// /readyz fails when the scheduler or the result applier has not completed a round for this long (a stopped or
    /// stalled loop is an outage; see the <c>mailmesh.queue.scheduler.last_round_age</c> metric).
    /// </summary>
    public TimeSpan StalledAfter { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// While results keep arriving, the result applier looks for more after this long instead of
    /// <see cref="PollInterval"/>: Delivery records results in the spool from another process, and each round the
    /// applier waits is a round the in-flight window stays full (issue 8).
    /// </summary>
    public TimeSpan BusyPollInterval { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Most recorded results applied per round of the result applier.</summary>
    public int ResultBatchSize { get; set; } = 200;

    /// <summary>Results applied concurrently (each is a few short transactions, one connection at a time).</summary>
    public int ResultConcurrency { get; set; } = 8;

    /// <summary>
    /// A result handed out to be applied is hidden from other replicas this long (doubling on each further try, up to
    /// 32×); if applying it failed, it is tried again after that.
    /// </summary>
    public TimeSpan ResultRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The lease clock stops while no scheduler reaches the spool: a gap longer than this between two heartbeats (which
    /// the schedulers write at most every PollInterval, before they claim) extends every live lease by the whole gap,
    /// because Delivery could not renew it then either (a database restart). Shorter gaps are left to
    /// Delivery:LeaseMargin. More than PollInterval; well under LeaseDuration to be of use. Two seconds (was five): a
    /// quick restart of PostgreSQL takes three to five, and every second of it not given back is a second less for a
    /// Delivery that holds a 250 to record it before the work is re-claimed.
    /// </summary>
    public TimeSpan LeaseClockGap { get; set; } = TimeSpan.FromSeconds(2);

    public IEnumerable<string> Validate()
    {
        foreach (var (name, value) in new[]
        {
            (nameof(MaxAge), MaxAge),
            (nameof(FirstRetryDelay), FirstRetryDelay),
            (nameof(MaxRetryDelay), MaxRetryDelay),
            (nameof(PollInterval), PollInterval),
            (nameof(LeaseDuration), LeaseDuration),
            (nameof(DelayNotifyAfter), DelayNotifyAfter),
            (nameof(PurgeCompletedAfter), PurgeCompletedAfter),
            (nameof(PurgeInterval), PurgeInterval),
            (nameof(StoreTimeout), StoreTimeout),
            (nameof(PublishTimeout), PublishTimeout),
            (nameof(MaxRoundBackoff), MaxRoundBackoff),
            (nameof(StalledAfter), StalledAfter),
            (nameof(ResultRetryDelay), ResultRetryDelay),
            (nameof(BusyPollInterval), BusyPollInterval),
            (nameof(LeaseClockGap), LeaseClockGap),
        })
        {
            if (value <= TimeSpan.Zero)
            {
                yield return $"{SectionName}:{name}: must be positive (was {value})";
            }
        }

        if (ClaimInterval < TimeSpan.Zero || ClaimInterval >= PollInterval)
        {
            yield return $"{SectionName}:{nameof(ClaimInterval)}: must be zero or more and less than {SectionName}:{nameof(PollInterval)} ({PollInterval}) (was {ClaimInterval})";
        }

        if (MaxRetryDelay > TimeSpan.Zero && FirstRetryDelay > MaxRetryDelay)
        {
            yield return $"{SectionName}:{nameof(FirstRetryDelay)}: must not exceed {SectionName}:{nameof(MaxRetryDelay)} ({MaxRetryDelay})";
        }

        if (!double.IsFinite(BackoffMultiplier) || BackoffMultiplier < 1.0)
        {
            yield return $"{SectionName}:{nameof(BackoffMultiplier)}: must be a number of at least 1 (was {BackoffMultiplier})";
        }

        if (!double.IsFinite(Jitter) || Jitter is < 0.0 or >= 1.0)
        {
            yield return $"{SectionName}:{nameof(Jitter)}: must be a fraction in [0, 1) (was {Jitter})";
        }

        if (DispatchBatchSize is < 1 or > 64)
        {
            // A Delivery replica holds up to Delivery:ConcurrentDeliveries batches and attempts that many jobs at once.
            yield return $"{SectionName}:{nameof(DispatchBatchSize)}: must be between 1 and 64 (was {DispatchBatchSize})";
        }

        if (ClaimBatchSize is < 1 or > 100_000)
        {
            yield return $"{SectionName}:{nameof(ClaimBatchSize)}: must be between 1 and 100000 (was {ClaimBatchSize})";
        }

        foreach (var (name, value) in new[]
        {
            (nameof(MaxJobsInFlight), MaxJobsInFlight),
            (nameof(MaxJobsInFlightPerDomain), MaxJobsInFlightPerDomain),
            (nameof(ResultBatchSize), ResultBatchSize),
            (nameof(ResultConcurrency), ResultConcurrency),
        })
        {
            if (value is < 1 or > 1_000_000)
            {
                yield return $"{SectionName}:{name}: must be between 1 and 1000000 (was {value})";
            }
        }

        // A round may legitimately take one store call, its publishes and a back-off wait; a stall alarm shorter than
        // that would fail readiness while everything works.
        var longestRound = StoreTimeout + PublishTimeout + MaxRoundBackoff;
        if (StalledAfter > TimeSpan.Zero && StoreTimeout > TimeSpan.Zero && PublishTimeout > TimeSpan.Zero && StalledAfter <= longestRound)
        {
            yield return $"{SectionName}:{nameof(StalledAfter)}: must exceed {SectionName}:{nameof(StoreTimeout)} + {nameof(PublishTimeout)} + {nameof(MaxRoundBackoff)} ({longestRound}) (was {StalledAfter})";
        }

        // Heartbeats come at most every PollInterval: a gap threshold below that would stop the clock while all is well.
        if (LeaseClockGap > TimeSpan.Zero && PollInterval > TimeSpan.Zero && LeaseClockGap <= PollInterval)
        {
            yield return $"{SectionName}:{nameof(LeaseClockGap)}: must exceed {SectionName}:{nameof(PollInterval)} ({PollInterval}) (was {LeaseClockGap})";
        }

        if (DsnMaxReturnedSize < 0)
        {
            yield return $"{SectionName}:{nameof(DsnMaxReturnedSize)}: must not be negative (was {DsnMaxReturnedSize})";
        }

        for (var i = 0; i < (SuppressBounceClasses?.Count ?? 0); i++)
        {
            var name = SuppressBounceClasses![i];
            if (!Enum.TryParse<Contracts.BounceClass>(name, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed) || int.TryParse(name, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out _))
            {
                yield return $"{SectionName}:{nameof(SuppressBounceClasses)}:{i}: '{name}' is not a bounce class ({string.Join(", ", Enum.GetNames<Contracts.BounceClass>())})";
            }
        }

        foreach (var error in Retry.Validate(this))
        {
            yield return error;
        }

        if (Hostname is { Length: > 0 } host && Uri.CheckHostName(host) != UriHostNameType.Dns)
        {
            yield return $"{SectionName}:{nameof(Hostname)}: '{host}' is not a DNS host name";
        }
    }
}
