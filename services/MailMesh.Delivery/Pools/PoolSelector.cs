using System.Data.Common;
using System.Net;
using System.Net.Sockets;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery.Pools;

/// <summary>One source address of a pool as Delivery uses it: the local address to bind and the name said in EHLO.</summary>
internal sealed record SourceAddress(IPAddress Address, string EhloName, int Weight, WarmUpOptions? WarmUp);

/// <summary>
/// What <see cref="PoolSelector.ChooseAsync"/> decided for one attempt: no pool (the OS picks the address), an address of
/// the pool, or none because every address of the pool reached its warm-up cap today (<see cref="Refusal"/>).
/// </summary>
internal sealed record PoolChoice(string? Pool, SourceAddress? Source, string? Refusal)
{
    public static readonly PoolChoice None = new(null, null, null);
}

/// <summary>
/// Chooses the source address of an attempt (issue 11, docs/delivery.md "IP pools"): the pool is the one the message was
/// submitted for (stored with it), else the envelope sender domain's (Delivery:PoolBySenderDomain, parent domains too),
/// else Delivery:DefaultPool (or the pool named "default"). Within the pool an address is drawn by weight among those
/// whose family the destination has; one in warm-up is taken only while today's count (UTC, shared by all replicas in
/// the spool) is under its cap, otherwise the draw goes on among the others.
/// </summary>
internal sealed class PoolSelector
{
    private readonly Dictionary<string, (string Name, List<SourceAddress> Addresses)> _pools = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, string> _bySenderDomain = new(StringComparer.OrdinalIgnoreCase);
    private readonly string? _defaultPool;
    private readonly IPoolCounters _counters;
    private readonly TimeProvider _time;
    private readonly ILogger<PoolSelector> _logger;
    private readonly Func<double> _sample;

    public PoolSelector(IOptions<DeliveryOptions> options, IPoolCounters counters, TimeProvider time, ILogger<PoolSelector> logger)
        : this(options.Value, counters, time, logger, Random.Shared.NextDouble)
    {
    }

    /// <param name="sample">Returns a uniformly distributed number in [0, 1) (tests pass their own).</param>
    internal PoolSelector(DeliveryOptions options, IPoolCounters counters, TimeProvider time, ILogger<PoolSelector> logger, Func<double> sample)
    {
        _counters = counters;
        _time = time;
        _logger = logger;
        _sample = sample;
        foreach (var (name, pool) in options.Pools)
        {
            _pools[name] = (name, [.. pool.Addresses
                .Where(a => a.Weight > 0 && IPAddress.TryParse(a.Address, out _))
                .Select(a => new SourceAddress(IPAddress.Parse(a.Address!), a.EhloName ?? options.HeloName, a.Weight, a.WarmUp))]);
        }

        foreach (var (domain, pool) in options.PoolBySenderDomain)
        {
            _bySenderDomain[domain.TrimEnd('.')] = pool;
        }

        _defaultPool = options.DefaultPool ?? (_pools.ContainsKey("default") ? "default" : null);
    }

    /// <summary>True when any pool is configured (otherwise every choice is <see cref="PoolChoice.None"/>).</summary>
    public bool IsEnabled => _pools.Count > 0;

    /// <summary>The pool for a message: the one it names when configured, else its sender domain's, else the default.</summary>
    public string? PoolFor(string? requested, string sender)
    {
        if (requested is not null && _pools.TryGetValue(requested, out var named))
        {
            return named.Name;
        }

        if (requested is not null)
        {
            PoolLog.UnknownPool(_logger, requested);
        }

        var at = sender.LastIndexOf('@');
        if (at >= 0 && _bySenderDomain.Count > 0)
        {
            // The domain and each parent: mail.example.com, then example.com, then com.
            var domain = sender[(at + 1)..].TrimEnd('.');
            while (domain.Length > 0)
            {
                if (_bySenderDomain.TryGetValue(domain, out var pool) && _pools.TryGetValue(pool, out var byDomain))
                {
                    return byDomain.Name;
                }

                var dot = domain.IndexOf('.', StringComparison.Ordinal);
                domain = dot < 0 ? string.Empty : domain[(dot + 1)..];
            }
        }

        return _defaultPool;
    }

    /// <summary>
    /// The source address of one attempt of a message for <paramref name="requested"/> (its stored pool) from
    /// <paramref name="sender"/>, to destinations of <paramref name="families"/> (empty: any). A warm-up address is
    /// counted here (one message); a store failure while counting leaves that address out of this attempt.
    /// </summary>
    public async Task<PoolChoice> ChooseAsync(string? requested, string sender, IReadOnlyCollection<AddressFamily> families, CancellationToken cancellationToken)
    {
        if (!IsEnabled || PoolFor(requested, sender) is not { } name)
        {
            return PoolChoice.None;
        }

        var all = _pools[name].Addresses;
        var candidates = all.Where(a => families.Count == 0 || families.Contains(a.Address.AddressFamily)).ToList();
        if (candidates.Count == 0)
        {
            // No address of the destinations' family: try the pool's own (the connection fails over to the next address).
            candidates = [.. all];
        }

        var day = DateOnly.FromDateTime(_time.GetUtcNow().UtcDateTime);
        var capped = 0;
        while (candidates.Count > 0)
        {
            var pick = Draw(candidates);
            if (pick.WarmUp?.CapOn(day) is not { } cap)
            {
                return new PoolChoice(name, pick, null);
            }

            try
            {
                if (await _counters.TryTakeAsync(pick.Address.ToString(), day, cap, cancellationToken))
                {
                    return new PoolChoice(name, pick, null);
                }

                capped++;
                PoolLog.WarmUpCapReached(_logger, name, pick.Address, cap);
            }
            catch (Exception ex) when (ex is DbException or TimeoutException or InvalidOperationException)
            {
                PoolLog.CounterFailed(_logger, ex, name, pick.Address);
            }

            candidates.Remove(pick);
        }

        return new PoolChoice(name, null, capped > 0
            ? $"pool warm-up cap reached: every address of pool {name} sent its daily cap"
            : $"pool {name}: the warm-up counters could not be read");
    }

    private SourceAddress Draw(List<SourceAddress> candidates)
    {
        var total = candidates.Sum(a => (long)a.Weight);
        var point = _sample() * total;
        foreach (var candidate in candidates)
        {
            point -= candidate.Weight;
            if (point < 0)
            {
                return candidate;
            }
        }

        return candidates[^1];
    }
}

internal static partial class PoolLog
{
    [LoggerMessage(4301, LogLevel.Debug, "The message names pool {Pool}, which is not in Delivery:Pools; choosing by sender domain or the default pool")]
    public static partial void UnknownPool(ILogger logger, string pool);

    [LoggerMessage(4302, LogLevel.Debug, "Pool {Pool}: {Address} reached its warm-up cap of {Cap} messages today")]
    public static partial void WarmUpCapReached(ILogger logger, string pool, IPAddress address, long cap);

    [LoggerMessage(4303, LogLevel.Warning, "Pool {Pool}: the warm-up counter of {Address} could not be taken; the address is left out of this attempt")]
    public static partial void CounterFailed(ILogger logger, Exception exception, string pool, IPAddress address);
}
