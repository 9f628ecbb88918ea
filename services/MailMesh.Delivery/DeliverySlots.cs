using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>
/// The attempts one Delivery process makes at once (<see cref="DeliveryOptions.ConcurrentDeliveries"/>), however their
/// work items came: alone, or several in one <c>DeliverMessages</c> batch (one consume, many attempts). A work item
/// waits for a slot before it takes its lease, so work waiting here holds nothing in the spool, and a lease that runs
/// out meanwhile is simply not taken.
/// </summary>
/// <remarks>Never disposed: an attempt that outlives the host's stop still gives its slot back.</remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification =
    "A SemaphoreSlim holds no OS handle unless its AvailableWaitHandle is asked for (never here); disposing it would break the release of an attempt that outlives the host.")]
internal sealed class DeliverySlots(IOptions<DeliveryOptions> options)
{
    private readonly SemaphoreSlim _slots = new(options.Value.ConcurrentDeliveries, options.Value.ConcurrentDeliveries);

    /// <summary>Waits for a slot; dispose the result to give it back.</summary>
    public async Task<Slot> AcquireAsync(CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken);
        return new Slot(_slots);
    }

    internal readonly struct Slot(SemaphoreSlim slots) : IDisposable
    {
        public void Dispose() => slots.Release();
    }
}
