using System.Collections.Concurrent;
using MailMesh.Storage;

namespace MailMesh.Delivery.Tests;

/// <summary>An <see cref="ISiteActionStore"/> in memory: what the fixture's Delivery and the shaping tests share.</summary>
internal sealed class InMemorySiteActionStore : ISiteActionStore
{
    private readonly ConcurrentDictionary<Guid, SiteAction> _actions = new();
    private readonly ConcurrentDictionary<(string, long), long> _hits = new();

    public IReadOnlyCollection<SiteAction> All => [.. _actions.Values];

    public Task<IReadOnlyList<SiteAction>> ListLiveAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<SiteAction>>([.. _actions.Values.Where(a => a.Until > now).OrderBy(a => a.CreatedAt)]);

    public Task AddAsync(SiteAction action, CancellationToken cancellationToken)
    {
        _actions.TryAdd(action.Id, action);
        return Task.CompletedTask;
    }

    public Task<bool> RemoveAsync(Guid id, CancellationToken cancellationToken) => Task.FromResult(_actions.TryRemove(id, out _));

    public Task<long> CountHitAsync(string key, DateTimeOffset now, TimeSpan window, CancellationToken cancellationToken)
    {
        var start = now.ToUnixTimeMilliseconds() / (long)window.TotalMilliseconds;
        return Task.FromResult(_hits.AddOrUpdate((key, start), 1, (_, n) => n + 1));
    }
}
