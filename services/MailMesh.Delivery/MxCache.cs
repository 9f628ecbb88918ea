using System.Collections.Concurrent;
using MailMesh.Contracts;
using MailMesh.ServiceDefaults;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>
/// Delivery's copy of the Dns service's answers, kept for the TTL the answer carries (<see cref="MxResolved.TimeToLive"/>,
/// capped by <see cref="DeliveryOptions.MxCacheMaxTtl"/>), so that a busy destination costs one <c>ResolveMx</c> round
/// trip per TTL instead of one per message. Definite answers are kept (exchangers, null MX, no such domain); a
/// temporary failure is not, so the next attempt asks again. Concurrent misses for one domain share one request.
/// </summary>
internal sealed class MxCache(IRequestClient<ResolveMx> resolver, DeliveryMetrics metrics, IOptions<DeliveryOptions> options, TimeProvider time)
{
    private readonly DeliveryOptions _options = options.Value;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly SingleFlight<string, MxResolved> _inFlight = new(StringComparer.Ordinal);

    /// <summary>Entries held now (tests and diagnostics).</summary>
    internal int Count => _entries.Count;

    /// <summary>
    /// The answer for <paramref name="domain"/>, equal-preference hosts freshly shuffled (RFC 5321 §5.1). Throws
    /// <see cref="RequestTimeoutException"/> when the Dns service does not answer within <see cref="DeliveryOptions.ResolveTimeout"/>.
    /// </summary>
    public async Task<MxResolved> ResolveAsync(string domain, CancellationToken cancellationToken)
    {
        var key = domain.TrimEnd('.').ToLowerInvariant();
        if (_entries.TryGetValue(key, out var cached))
        {
            if (cached.ExpiresAt > time.GetUtcNow())
            {
                metrics.MxLookup("hit");
                return cached.Answer with { Domain = domain, FromCache = true, Hosts = MxHostOrder.ShuffleEqualPreferences(cached.Answer.Hosts) };
            }

            _entries.TryRemove(KeyValuePair.Create(key, cached));
        }

        metrics.MxLookup("miss");
        var shared = _inFlight.RunAsync(key, AskAsync);
        var answer = await shared.WaitAsync(cancellationToken);
        return answer with { Domain = domain, Hosts = MxHostOrder.ShuffleEqualPreferences(answer.Hosts) };
    }

    /// <summary>One request on behalf of every caller waiting for this domain: bounded by ResolveTimeout, not by any caller's token.</summary>
    private async Task<MxResolved> AskAsync(string key)
    {
        var response = await resolver.GetResponse<MxResolved>(
            new ResolveMx { Domain = key }, CancellationToken.None, RequestTimeout.After(ms: (int)_options.ResolveTimeout.TotalMilliseconds));
        var answer = response.Message;
        var keep = answer.TimeToLive < _options.MxCacheMaxTtl ? answer.TimeToLive : _options.MxCacheMaxTtl;
        if (answer.Status != MxStatus.TemporaryFailure && keep > TimeSpan.Zero && _options.MxCacheEntries > 0)
        {
            if (_entries.Count >= _options.MxCacheEntries)
            {
                Evict();
            }

            _entries[key] = new Entry(answer, time.GetUtcNow() + keep);
        }

        return answer;
    }

    /// <summary>Full: drop what has expired, and if that is not enough, an arbitrary half (a miss costs one round trip).</summary>
    private void Evict()
    {
        var now = time.GetUtcNow();
        foreach (var (key, entry) in _entries)
        {
            if (entry.ExpiresAt <= now)
            {
                _entries.TryRemove(KeyValuePair.Create(key, entry));
            }
        }

        var excess = _entries.Count - (_options.MxCacheEntries / 2);
        foreach (var key in _entries.Keys)
        {
            if (excess-- <= 0)
            {
                break;
            }

            _entries.TryRemove(key, out _);
        }
    }

    private sealed record Entry(MxResolved Answer, DateTimeOffset ExpiresAt);
}
