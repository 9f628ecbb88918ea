using MassTransit;

namespace MailMesh.Queue.Tests;

/// <summary>
/// Records what the bus published and consumed and lets a test wait for it: an event-driven wait with a timeout,
/// independent of the harness's inactivity heuristics.
/// </summary>
internal sealed class BusProbe : IPublishObserver, IConsumeObserver
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);
    private readonly Lock _gate = new();
    private readonly List<object> _published = [];
    private readonly List<(object Message, Exception? Fault)> _consumed = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyList<T> Published<T>()
    {
        lock (_gate)
        {
            return [.. _published.OfType<T>()];
        }
    }

    public IReadOnlyList<(T Message, Exception? Fault)> Consumed<T>()
    {
        lock (_gate)
        {
            return [.. _consumed.Where(c => c.Message is T).Select(c => ((T)c.Message, c.Fault))];
        }
    }

    /// <summary>Waits until a published <typeparamref name="T"/> matches, and returns it.</summary>
    public Task<T> WaitPublishedAsync<T>(Func<T, bool> match) =>
        WaitAsync(() => Published<T>().FirstOrDefault(match), $"a published {typeof(T).Name}");

    /// <summary>Waits until <paramref name="count"/> matching <typeparamref name="T"/> were consumed (successfully or not).</summary>
    public Task WaitConsumedAsync<T>(Func<T, bool> match, int count = 1) =>
        WaitAsync(() => Consumed<T>().Count(c => match(c.Message)) >= count ? (object)true : null, $"{count} consumed {typeof(T).Name}");

    private async Task<TResult> WaitAsync<TResult>(Func<TResult?> probe, string what)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                changed = _changed.Task;
            }

            if (probe() is { } result)
            {
                return result;
            }

            try
            {
                await changed.WaitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                var faults = string.Join("; ", _consumed.Where(c => c.Fault is not null).Select(c => c.Fault!.Message));
                throw new TimeoutException($"timed out waiting for {what}; consume faults: [{faults}]");
            }
        }
    }

    private void Record(Action<BusProbe> add)
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            add(this);
            changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    public Task PrePublish<T>(PublishContext<T> context)
        where T : class => Task.CompletedTask;

    /// <summary>
    /// Records the message; a <see cref="Contracts.MessageEvents"/> batch also records each of its events, and a
    /// <see cref="Contracts.DeliverMessages"/> batch each of its work items, so that <c>Published&lt;MessageEvent&gt;()</c>
    /// and <c>Published&lt;DeliverMessage&gt;()</c> see every one, however it travelled.
    /// </summary>
    public Task PostPublish<T>(PublishContext<T> context)
        where T : class
    {
        Record(p =>
        {
            p._published.Add(context.Message);
            if (context.Message is Contracts.MessageEvents batch)
            {
                p._published.AddRange(batch.Events);
            }
            else if (context.Message is Contracts.DeliverMessages work)
            {
                p._published.AddRange(work.Jobs);
            }
        });
        return Task.CompletedTask;
    }

    public Task PublishFault<T>(PublishContext<T> context, Exception exception)
        where T : class => Task.CompletedTask;

    public Task PreConsume<T>(ConsumeContext<T> context)
        where T : class => Task.CompletedTask;

    public Task PostConsume<T>(ConsumeContext<T> context)
        where T : class
    {
        Record(p => p._consumed.Add((context.Message, null)));
        return Task.CompletedTask;
    }

    public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception)
        where T : class
    {
        Record(p => p._consumed.Add((context.Message, exception)));
        return Task.CompletedTask;
    }
}
