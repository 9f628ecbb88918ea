using System.Net;
using System.Net.Sockets;
using MailMesh.Smtp;

namespace MailMesh.Delivery.Pools;

/// <summary>A named pool of local source addresses (section "Delivery:Pools:&lt;name&gt;").</summary>
public sealed class SourcePoolOptions
{
    /// <summary>The pool's addresses (Delivery:Pools:&lt;name&gt;:Addresses:N); at least one.</summary>
    public List<SourceAddressOptions> Addresses { get; set; } = [];
}

/// <summary>One local source address of a pool, with the name it gives in EHLO.</summary>
public sealed class SourceAddressOptions
{
    /// <summary>The local IPv4 or IPv6 address connections are bound to (required; must be an address of this host).</summary>
    public string? Address { get; set; }

    /// <summary>
    /// The name said in EHLO/HELO from this address (RFC 5321 §4.1.1.1; the address's forward-confirmed PTR name);
    /// default: Delivery:HeloName.
    /// </summary>
    public string? EhloName { get; set; }

    /// <summary>Relative share of the pool's connections (0: not used, e.g. while draining).</summary>
    public int Weight { get; set; } = 1;

    /// <summary>A warm-up schedule for a new address: a daily message cap that grows; absent: no cap.</summary>
    public WarmUpOptions? WarmUp { get; set; }
}

/// <summary>
/// A new address's warm-up (Delivery:Pools:&lt;name&gt;:Addresses:N:WarmUp): on day d (0 on <see cref="Start"/>, UTC days)
/// at most <see cref="Schedule"/>[d] messages, or, without a schedule, <see cref="DailyLimit"/> × <see cref="Factor"/>^d (rounded down)
/// for <see cref="Days"/> days; after that, no cap. Counted across all Delivery replicas in the spool.
/// </summary>
public sealed class WarmUpOptions
{
    /// <summary>The first day of the warm-up (UTC, yyyy-MM-dd; required). Days before it count as day 0.</summary>
    public DateOnly? Start { get; set; }

    /// <summary>Messages on day 0 (without <see cref="Schedule"/>).</summary>
    public long DailyLimit { get; set; } = 50;

    /// <summary>Growth of the cap from one day to the next (without <see cref="Schedule"/>).</summary>
    public double Factor { get; set; } = 1.5;

    /// <summary>How many days the formula's cap applies (without <see cref="Schedule"/>); after them, no cap.</summary>
    public int Days { get; set; } = 30;

    /// <summary>An explicit cap per day (Schedule:0 for day 0, ...), replacing the formula; no cap after its last day.</summary>
    public List<long> Schedule { get; set; } = [];

    /// <summary>The cap on <paramref name="day"/>, or null when the warm-up is over.</summary>
    public long? CapOn(DateOnly day)
    {
        var index = Start is { } start ? Math.Max(0, day.DayNumber - start.DayNumber) : 0;
        if (Schedule.Count > 0)
        {
            return index < Schedule.Count ? Schedule[index] : null;
        }

        if (index >= Days)
        {
            return null;
        }

        var cap = DailyLimit * Math.Pow(Factor, index);
        return double.IsFinite(cap) && cap < long.MaxValue ? (long)Math.Floor(cap) : null;
    }
}

/// <summary>Validation of <see cref="DeliveryOptions.Pools"/> and the pool choice settings (messages name the key).</summary>
internal static class PoolValidation
{
    public static IEnumerable<string> Validate(DeliveryOptions options)
    {
        foreach (var (name, pool) in options.Pools)
        {
            var prefix = $"Delivery:Pools:{name}";
            if (!PoolHeader.IsValidName(name))
            {
                yield return $"{prefix}: a pool name is 1-64 letters, digits and . _ -";
            }

            if (pool.Addresses.Count == 0)
            {
                yield return $"{prefix}:Addresses: a pool needs at least one address";
            }

            for (var i = 0; i < pool.Addresses.Count; i++)
            {
                foreach (var error in Validate($"{prefix}:Addresses:{i}", pool.Addresses[i]))
                {
                    yield return error;
                }
            }

            if (pool.Addresses.Count > 0 && pool.Addresses.All(a => a.Weight == 0))
            {
                yield return $"{prefix}:Addresses: at least one address needs a Weight above 0";
            }
        }

        if (options.DefaultPool is { } defaultPool && !options.Pools.Keys.Contains(defaultPool, StringComparer.OrdinalIgnoreCase))
        {
            yield return $"Delivery:DefaultPool: '{defaultPool}' is not a pool in Delivery:Pools";
        }

        foreach (var (domain, pool) in options.PoolBySenderDomain)
        {
            if (!options.Pools.Keys.Contains(pool, StringComparer.OrdinalIgnoreCase))
            {
                yield return $"Delivery:PoolBySenderDomain:{domain}: '{pool}' is not a pool in Delivery:Pools";
            }
        }
    }

    private static IEnumerable<string> Validate(string prefix, SourceAddressOptions address)
    {
        if (!IPAddress.TryParse(address.Address, out var ip))
        {
            yield return $"{prefix}:Address: required, an IPv4 or IPv6 address";
        }
        else if (CannotBind(ip) is { } why)
        {
            yield return $"{prefix}:Address: {address.Address} is not a local address of this host ({why})";
        }

        if (address.EhloName is { } ehlo && (ehlo.Length == 0 || ehlo.Any(c => c <= ' ' || c > '~')))
        {
            yield return $"{prefix}:EhloName: must be a host name (printable ASCII, no spaces)";
        }

        if (address.Weight < 0)
        {
            yield return $"{prefix}:Weight: must not be negative";
        }

        if (address.WarmUp is { } warmUp)
        {
            if (warmUp.Start is null)
            {
                yield return $"{prefix}:WarmUp:Start: required, the first day of the warm-up (yyyy-MM-dd)";
            }

            if (warmUp.Schedule.Count == 0)
            {
                if (warmUp.DailyLimit < 1)
                {
                    yield return $"{prefix}:WarmUp:DailyLimit: must be at least 1";
                }

                if (!(warmUp.Factor >= 1) || !double.IsFinite(warmUp.Factor))
                {
                    yield return $"{prefix}:WarmUp:Factor: must be at least 1";
                }

                if (warmUp.Days < 1)
                {
                    yield return $"{prefix}:WarmUp:Days: must be at least 1";
                }
            }
            else if (warmUp.Schedule.Any(cap => cap < 0))
            {
                yield return $"{prefix}:WarmUp:Schedule: caps must not be negative";
            }
        }
    }

    /// <summary>Why a socket cannot be bound to <paramref name="address"/> (not an address of this host), or null.</summary>
    private static string? CannotBind(IPAddress address)
    {
        try
        {
            using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(address, 0));
            return null;
        }
        catch (SocketException ex)
        {
            return ex.SocketErrorCode.ToString();
        }
    }
}
