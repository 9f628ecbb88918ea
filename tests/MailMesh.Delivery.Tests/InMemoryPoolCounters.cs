using System.Collections.Concurrent;
using MailMesh.Storage;

namespace MailMesh.Delivery.Tests;

/// <summary>Warm-up counters as <see cref="IPoolCounters"/> defines them, in memory.</summary>
public sealed class InMemoryPoolCounters : IPoolCounters
{
    private readonly ConcurrentDictionary<(string, DateOnly), long> _counts = new();
    private readonly Lock _gate = new();

    public Task<bool> TryTakeAsync(string address, DateOnly day, long cap, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var count = _counts.GetValueOrDefault((address, day));
            if (count >= cap)
            {
                return Task.FromResult(false);
            }

            _counts[(address, day)] = count + 1;
            return Task.FromResult(true);
        }
    }

    public Task<long> CountAsync(string address, DateOnly day, CancellationToken cancellationToken) =>
        Task.FromResult(_counts.GetValueOrDefault((address, day)));
}
