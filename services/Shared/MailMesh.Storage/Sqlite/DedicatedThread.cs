using System.Collections.Concurrent;

namespace MailMesh.Storage.Sqlite;

/// <summary>
/// Runs an async loop on a thread of its own: every continuation of the loop comes back to that thread instead of
/// queueing on the thread pool. For a loop that blocks in system calls (SQLite's group commit: statements and the WAL's
/// fsync, one batch after another), so that it never holds a pool thread the sessions need, and its wake-up when work
/// arrives is the kernel's to schedule, not a work item behind every other one in the pool's queue.
/// </summary>
internal sealed class DedicatedThread : SynchronizationContext
{
    private readonly BlockingCollection<(SendOrPostCallback Callback, object? State)> _queue = [];

    private DedicatedThread()
    {
    }

    /// <summary>Starts <paramref name="loop"/> on a new background thread named <paramref name="name"/>; the task ends with it.</summary>
    public static Task Run(string name, Func<Task> loop)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            var context = new DedicatedThread();
            SetSynchronizationContext(context);

            // As the pool does after each work item: no async-local value (an Activity, a logging scope) one callback
            // leaves on the thread is there for the next.
            var baseline = ExecutionContext.Capture();
            Task task;
            try
            {
                task = loop();
            }
            catch (Exception ex)
            {
                task = Task.FromException(ex);
            }

            task.ContinueWith(static (_, state) => ((DedicatedThread)state!)._queue.CompleteAdding(), context, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            foreach (var (callback, state) in context._queue.GetConsumingEnumerable())
            {
                callback(state);
                if (baseline is not null)
                {
                    ExecutionContext.Restore(baseline);
                }
            }

            if (task.Exception is { } exception)
            {
                done.SetException(exception.InnerExceptions);
            }
            else if (task.IsCanceled)
            {
                done.SetCanceled();
            }
            else
            {
                done.SetResult();
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.UnsafeStart(); // not the starter's async-locals (a request's Activity) for the life of the process
        return done.Task;
    }

    public override void Post(SendOrPostCallback d, object? state)
    {
        try
        {
            _queue.Add((d, state));
        }
        catch (InvalidOperationException)
        {
            // The loop has ended: a late continuation (not the loop's own) runs on the pool.
            ThreadPool.UnsafeQueueUserWorkItem(static s => s.d(s.state), (d, state), preferLocal: false);
        }
    }

    public override void Send(SendOrPostCallback d, object? state) => throw new NotSupportedException("Send is not supported on the dedicated thread.");

    public override SynchronizationContext CreateCopy() => this;
}
