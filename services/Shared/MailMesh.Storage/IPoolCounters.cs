namespace MailMesh.Storage;

/// <summary>
/// Messages sent from each source address per UTC day, shared by every Delivery replica: what an address in warm-up
/// counts against its daily cap (issue 11, docs/delivery.md "IP pools"). One statement per message: a conditional
/// upsert that stops at the cap, so replicas never overshoot it together.
/// </summary>
public interface IPoolCounters
{
    /// <summary>
    /// Counts one message for <paramref name="address"/> on <paramref name="day"/> when fewer than
    /// <paramref name="cap"/> are counted already: true when counted, false when the cap is reached (nothing changes).
    /// </summary>
    Task<bool> TryTakeAsync(string address, DateOnly day, long cap, CancellationToken cancellationToken);

    /// <summary>The messages counted for <paramref name="address"/> on <paramref name="day"/> (0 when none).</summary>
    Task<long> CountAsync(string address, DateOnly day, CancellationToken cancellationToken);
}
