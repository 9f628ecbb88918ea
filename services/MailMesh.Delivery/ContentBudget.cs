namespace MailMesh.Delivery;

/// <summary>
/// Bounds the octets of large-message copies (<see cref="DeliveryOptions.ContentDirectory"/>) that this process holds at
/// once, to <see cref="DeliveryOptions.MaxContentBytes"/>: in the chart that directory is a size-capped emptyDir, and a
/// pod over it is evicted. Room is counted in 1 MiB units; one acquirer at a time collects its units (FIFO), so two large
/// attempts never each hold half of what both need. A copy larger than the whole budget waits until it has it all.
/// </summary>
internal sealed class ContentBudget : IDisposable
{
    private const long Unit = 1024 * 1024;

    private readonly SemaphoreSlim _units;
    private readonly SemaphoreSlim _turn = new(1, 1);
    private readonly int _total;

    public ContentBudget(long maxBytes)
    {
        _total = (int)Math.Clamp(maxBytes / Unit, 1, int.MaxValue);
        _units = new SemaphoreSlim(_total, _total);
    }

    /// <summary>Units free now (for tests).</summary>
    public int Available => _units.CurrentCount;

    /// <summary>
    /// Room for <paramref name="bytes"/>, released when the result is disposed; null when it did not come within
    /// <paramref name="timeout"/>.
    /// </summary>
    public async Task<IDisposable?> TryAcquireAsync(long bytes, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        var needed = (int)Math.Clamp((bytes + Unit - 1) / Unit, 1, _total);
        using var deadline = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var held = 0;
        try
        {
            await _turn.WaitAsync(linked.Token);
            try
            {
                for (; held < needed; held++)
                {
                    await _units.WaitAsync(linked.Token);
                }
            }
            finally
            {
                _turn.Release();
            }

            return new Lease(this, held);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Release(held);
            return null;
        }
        catch
        {
            Release(held);
            throw;
        }
    }

    private void Release(int units)
    {
        if (units > 0)
        {
            _units.Release(units);
        }
    }

    public void Dispose()
    {
        _units.Dispose();
        _turn.Dispose();
    }

    private sealed class Lease(ContentBudget budget, int units) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                budget.Release(units);
            }
        }
    }
}
