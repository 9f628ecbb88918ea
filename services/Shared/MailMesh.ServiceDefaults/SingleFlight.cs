using System.Collections.Concurrent;

namespace MailMesh.ServiceDefaults;

/// <summary>
/// Coalesces concurrent work per key: the first caller for a key starts the work, later callers for the same key share
/// its task until it completes, then the key is free again. The work is started with <see cref="Task.Run(Func{Task})"/>,
/// so no caller ever waits on a lock while another runs the work's synchronous part: a request client whose first call
/// blocks a thread (MassTransit connects a request's response pipe with a blocking wait) must not take every caller's
/// thread with it. (With a <c>Lazy&lt;Task&gt;</c> in ExecutionAndPublication mode, it did: Delivery's thread pool
/// starved under a burst, issue 8.)
/// </summary>
public sealed class SingleFlight<TKey, TValue>
    where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, Task<TValue>> _inFlight;

    public SingleFlight(IEqualityComparer<TKey>? comparer = null) => _inFlight = new(comparer);

    /// <summary>Work in flight now (tests and diagnostics).</summary>
    public int Count => _inFlight.Count;

    /// <summary>
    /// The task of the work in flight for <paramref name="key"/>, or of <paramref name="work"/> started now. The work runs
    /// on no caller's token: one caller giving up does not fail the others (each may <c>WaitAsync</c> its own token).
    /// </summary>
    public Task<TValue> RunAsync(TKey key, Func<TKey, Task<TValue>> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (_inFlight.TryGetValue(key, out var running))
        {
            return running;
        }

        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var candidate = Unwrap(start.Task, key, work);
        var shared = _inFlight.GetOrAdd(key, candidate);
        if (!ReferenceEquals(shared, candidate))
        {
            return shared; // another caller won the race; ours never starts
        }

        // Removed when done, before its awaiters run, so a caller that sees the result and asks again starts afresh.
        _ = candidate.ContinueWith(
            static (done, state) =>
            {
                var (inFlight, key) = ((ConcurrentDictionary<TKey, Task<TValue>>, TKey))state!;
                inFlight.TryRemove(KeyValuePair.Create(key, done));
            },
            (_inFlight, key),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        start.SetResult();
        return candidate;
    }

    private static async Task<TValue> Unwrap(Task start, TKey key, Func<TKey, Task<TValue>> work)
    {
        await start.ConfigureAwait(false);
        return await Task.Run(() => work(key)).ConfigureAwait(false);
    }
}
