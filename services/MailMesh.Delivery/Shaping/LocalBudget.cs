namespace MailMesh.Delivery.Shaping;

/// <summary>
/// Budgets in this process's memory: connection counts against a limit, and token buckets. Standalone's budget (one
/// process owns everything), and every replica's fallback while the shared store is unreachable.
/// </summary>
/// <remarks>
/// The buckets work as the shared ones do (GCRA-like): a take refills the bucket by the time since the last one, at most
/// to its burst, and may leave it in debt by up to <c>maxWait × rate</c>; the taker then waits until its token is due.
/// Tokens taken never exceed <c>burst + rate × elapsed</c> in any interval: the destination never sees more.
/// </remarks>
internal sealed class LocalBudget(TimeProvider time)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, int> _connections = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);

    /// <summary>Takes a connection slot when fewer than <paramref name="limit"/> are held.</summary>
    public bool TryTakeConnection(string key, int limit)
    {
        lock (_gate)
        {
            var held = _connections.GetValueOrDefault(key);
            if (held >= limit)
            {
                return false;
            }

            _connections[key] = held + 1;
            return true;
        }
    }

    /// <summary>Gives a slot back.</summary>
    public void ReleaseConnection(string key)
    {
        lock (_gate)
        {
            if (_connections.TryGetValue(key, out var held))
            {
                if (held <= 1)
                {
                    _connections.Remove(key);
                }
                else
                {
                    _connections[key] = held - 1;
                }
            }
        }
    }

    /// <summary>Slots held now (tests, diagnostics).</summary>
    public int Connections(string key)
    {
        lock (_gate)
        {
            return _connections.GetValueOrDefault(key);
        }
    }

    /// <summary>
    /// One token: the wait before it may be used (zero: now), or null when that wait would exceed
    /// <paramref name="maxWait"/> (nothing taken).
    /// </summary>
    public TimeSpan? TryTakeToken(string key, Rate rate, TimeSpan maxWait)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            var tokens = rate.Burst;
            if (_buckets.TryGetValue(key, out var bucket))
            {
                var elapsed = Math.Max(0, (now - bucket.At).TotalSeconds);
                tokens = Math.Min(rate.Burst, bucket.Tokens + (elapsed * rate.PerSecond));
            }

            var left = tokens - 1;
            if (left < -(maxWait.TotalSeconds * rate.PerSecond))
            {
                return null;
            }

            _buckets[key] = new Bucket(left, bucket is null || now > bucket.At ? now : bucket.At);
            return left >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-left / rate.PerSecond);
        }
    }

    private sealed record Bucket(double Tokens, DateTimeOffset At);
}
