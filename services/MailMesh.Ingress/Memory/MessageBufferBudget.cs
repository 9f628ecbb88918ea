using Microsoft.Extensions.Options;

namespace MailMesh.Ingress.Memory;

/// <summary>
/// The process-wide budget for message bytes held in memory while they arrive (SMTP DATA/BDAT and HTTP bodies):
/// <see cref="IngressOptions.MaxBufferedBytes"/>. Buffers reserve their capacity before they grow and release it when
/// the message is committed or dropped, so the total is bounded by configuration, never by what clients declare.
/// When it is exhausted SMTP answers 452 4.3.1 (RFC 3463: mail system full) and HTTP 503. Observed as
/// <c>mailmesh.smtp.buffered_bytes</c>.
/// </summary>
internal sealed class MessageBufferBudget
{
    private long _inUse;
    private long _peak;
    private long _spilled;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public MessageBufferBudget(IOptions<IngressOptions> options, IngressMetrics metrics)
    {
        Limit = options.Value.MaxBufferedBytes;
        SpillLimit = options.Value.MaxSpilledBytes;
        metrics.ObserveBufferedBytes(() => InUse);
    }

    /// <summary>The configured limit in octets.</summary>
    public long Limit { get; }

    /// <summary>The configured limit for octets in spill files (Ingress:MaxSpilledBytes).</summary>
    public long SpillLimit { get; }

    /// <summary>Octets in spill files now.</summary>
    public long Spilled => Volatile.Read(ref _spilled);

    /// <summary>Reserves <paramref name="octets"/> of spill-file space; false (and nothing reserved) past the limit.</summary>
    public bool TryReserveSpill(long octets)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(octets);
        if (Interlocked.Add(ref _spilled, octets) <= SpillLimit)
        {
            return true;
        }

        Interlocked.Add(ref _spilled, -octets);
        return false;
    }

    public void ReleaseSpill(long octets)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(octets);
        if (Interlocked.Add(ref _spilled, -octets) < 0)
        {
            throw new InvalidOperationException("More spilled bytes released than reserved.");
        }
    }

    /// <summary>Octets reserved by buffers now.</summary>
    public long InUse => Volatile.Read(ref _inUse);

    /// <summary>The most <see cref="InUse"/> has been since the start or <see cref="ResetPeak"/> (tests and the load tool).</summary>
    public long Peak => Volatile.Read(ref _peak);

    public void ResetPeak() => Volatile.Write(ref _peak, InUse);

    /// <summary>Octets that can still be reserved.</summary>
    public long Available => Math.Max(0, Limit - InUse);

    /// <summary>Reserves <paramref name="octets"/>; false (and nothing reserved) when that would exceed the limit.</summary>
    public bool TryReserve(long octets)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(octets);
        var current = Volatile.Read(ref _inUse);
        while (true)
        {
            if (current + octets > Limit)
            {
                return false;
            }

            var seen = Interlocked.CompareExchange(ref _inUse, current + octets, current);
            if (seen == current)
            {
                RaisePeak(current + octets);
                Changed();
                return true;
            }

            current = seen;
        }
    }

    public void Release(long octets)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(octets);
        var after = Interlocked.Add(ref _inUse, -octets);
        if (after < 0)
        {
            throw new InvalidOperationException("More buffered bytes released than reserved.");
        }

        Changed();
    }

    /// <summary>Completes when <see cref="InUse"/> satisfies <paramref name="condition"/> (for tests and the load tool: wait on the event, never poll).</summary>
    public async Task WaitUntilAsync(Func<long, bool> condition, CancellationToken cancellationToken)
    {
        while (true)
        {
            var changed = Volatile.Read(ref _changed).Task;
            if (condition(InUse))
            {
                return;
            }

            await changed.WaitAsync(cancellationToken);
        }
    }

    private void RaisePeak(long inUse)
    {
        var peak = Volatile.Read(ref _peak);
        while (inUse > peak)
        {
            var seen = Interlocked.CompareExchange(ref _peak, inUse, peak);
            if (seen == peak)
            {
                return;
            }

            peak = seen;
        }
    }

    private void Changed() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}
