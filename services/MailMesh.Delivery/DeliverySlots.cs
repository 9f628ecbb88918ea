using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>
/// The attempts one Delivery process makes at once (<see cref="DeliveryOptions.ConcurrentDeliveries"/>), however their
/// work items came: alone, or several in one <c>DeliverMessages</c> batch (one consume, many attempts). A work item
/// waits for a slot before it takes its lease, so work waiting here holds nothing in the spool, and a lease that runs
/// out meanwhile is simply not taken.
/// </summary>
internal sealed class DeliverySlots(IOptions<DeliveryOptions> options) : IDisposable
{
    private readonly SemaphoreSlim _slots = new(options.Value.ConcurrentDeliveries, options.Value.ConcurrentDeliveries);

    /// <summary>Waits for a slot; dispose the result to give it back.</summary>
    public async Task<Slot> AcquireAsync(CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken);
        return new Slot(_slots);
    }

    public void Dispose() => _slots.Dispose();

    internal readonly struct Slot(SemaphoreSlim slots) : IDisposable
    {
        public void Dispose() => slots.Release();
    }
}
