using MailMesh.Smtp;

namespace MailMesh.Storage;

/// <summary>Argument checks and value conversions shared by both stores, so both behave identically.</summary>
internal static class StoreArguments
{
    /// <summary>
    /// The domain a recipient is routed by: the part after the last '@', lower-cased (RFC 5321 §2.4: domains are
    /// case-insensitive). A non-ASCII domain (RFC 6531 SMTPUTF8) is converted to its A-label form (RFC 5890) so
    /// recipients of one domain group together whichever form the client used; an address literal
    /// (RFC 5321 §4.1.3, "[192.0.2.1]") is kept as written.
    /// </summary>
    public static string DomainOf(string address)
    {
        var at = address.LastIndexOf('@');
        var domain = at < 0 ? string.Empty : address[(at + 1)..];
        if (domain.Length == 0)
        {
            throw new ArgumentException($"Recipient '{address}' has no domain.", nameof(address));
        }

        // Not a valid domain: route it by its lower-cased form; DNS will fail it and Queue will bounce it.
        return NormalizedAddress.TryNormalizeDomain(domain, out var normalized) ? normalized : domain.ToLowerInvariant();
    }

    /// <summary>Suppression keys: addresses compare case-insensitively (see <see cref="IPolicyStore"/>).</summary>
    public static string SuppressionKey(string address)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(address);
        return NormalizedAddress.TryParse(address.Trim(), out var normalized) ? normalized.ComparisonKey : address.Trim().ToLowerInvariant();
    }

    public static void CheckNewMessage(NewMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(message.Sender);
        ArgumentNullException.ThrowIfNull(message.Recipients);
        if (message.ContentSource is { } source)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(source.Length);
            ArgumentNullException.ThrowIfNull(source.Open);
            if (!message.Content.IsEmpty)
            {
                throw new ArgumentException("A message carries its content either in memory or as a source, not both.", nameof(message));
            }
        }

        foreach (var recipient in message.Recipients)
        {
            if (recipient.State is RecipientState.InFlight)
            {
                throw new ArgumentException("A new recipient cannot start in flight.", nameof(message));
            }
        }
    }

    public static void CheckClaim(int maxRecipients, TimeSpan leaseDuration)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxRecipients);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(leaseDuration, TimeSpan.Zero);
    }

    /// <summary>How many candidate rows a windowed claim reads past the ones it takes, so a domain at its limit does
    /// not hide the due work of other domains behind it (up to this factor).</summary>
    public const int WindowScanFactor = 4;

    public static (DateTimeOffset Now, DateTimeOffset Expires, int MaxRecipients, int Scan, long MaxJobs, long MaxDomainJobs) CheckClaim(ClaimRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckClaim(request.MaxRecipients, request.LeaseDuration);
        if (request.MaxJobsInFlight is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.MaxJobsInFlight, "MaxJobsInFlight must be positive.");
        }

        if (request.MaxJobsInFlightPerDomain is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(request), request.MaxJobsInFlightPerDomain, "MaxJobsInFlightPerDomain must be positive.");
        }

        var now = Truncate(request.Now);
        var windowed = request.MaxJobsInFlight is not null || request.MaxJobsInFlightPerDomain is not null;
        var scan = windowed ? (int)Math.Min((long)request.MaxRecipients * WindowScanFactor, 100_000) : request.MaxRecipients;
        return (now, Truncate(now + request.LeaseDuration), request.MaxRecipients, Math.Max(scan, request.MaxRecipients),
            request.MaxJobsInFlight ?? int.MaxValue, request.MaxJobsInFlightPerDomain ?? int.MaxValue);
    }

    public static void CheckLeaseClock(TimeSpan maxGap) =>
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxGap, TimeSpan.Zero);

    public static void CheckResult(PendingResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(result.Payload);
        ArgumentNullException.ThrowIfNull(result.RecipientIds);
    }

    public static void CheckClaimResults(int maxResults, TimeSpan retryAfter)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxResults);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(retryAfter, TimeSpan.Zero);
    }

    public static void CheckUpdates(IReadOnlyList<RecipientUpdate> updates)
    {
        ArgumentNullException.ThrowIfNull(updates);
        var seen = new HashSet<long>();
        foreach (var update in updates)
        {
            if (update.State is RecipientState.InFlight)
            {
                throw new ArgumentException($"Recipient {update.RecipientId}: an attempt cannot leave a recipient in flight.", nameof(updates));
            }

            if (!seen.Add(update.RecipientId))
            {
                throw new ArgumentException($"Recipient {update.RecipientId} appears twice in one attempt.", nameof(updates));
            }
        }
    }

    /// <summary>When a recipient becomes due again after this update: Deferred/Queued at NextAttemptAt (or at once).</summary>
    public static DateTimeOffset NextAttemptAt(RecipientUpdate update) => update.NextAttemptAt ?? update.AttemptedAt;

    public static void CheckCounter(string key, TimeSpan window)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentOutOfRangeException.ThrowIfLessThan(window, TimeSpan.FromMilliseconds(1));
    }

    /// <summary>The start of the fixed window of length <paramref name="window"/> that contains <paramref name="now"/>, in unix ms.</summary>
    public static long WindowStart(DateTimeOffset now, TimeSpan window)
    {
        var ms = now.ToUnixTimeMilliseconds();
        var length = (long)window.TotalMilliseconds;
        return ms - (((ms % length) + length) % length);
    }

    public static long ToUnixMs(DateTimeOffset value) => value.ToUnixTimeMilliseconds();

    public static DateTimeOffset FromUnixMs(long value) => DateTimeOffset.FromUnixTimeMilliseconds(value);

    /// <summary>Both stores keep millisecond precision in UTC.</summary>
    public static DateTimeOffset Truncate(DateTimeOffset value) => DateTimeOffset.FromUnixTimeMilliseconds(value.ToUnixTimeMilliseconds());
}
