namespace MailMesh.Queue;

/// <summary>
/// Wakes the scheduler before its poll interval ends (a new message arrived). Pokes between <see cref="Reset"/> and
/// <see cref="WaitAsync"/> are not lost: the wait then returns at once.
/// </summary>
internal sealed class SchedulerSignal
{
    private TaskCompletionSource _poked = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Asks the scheduler to look for due work now.</summary>
    public void Poke() => Volatile.Read(ref _poked).TrySetResult();

    /// <summary>Forgets earlier pokes. Call before looking for work, so pokes that arrive while looking count.</summary>
    public void Reset()
    {
        var current = Volatile.Read(ref _poked);
        if (current.Task.IsCompleted)
        {
            Interlocked.CompareExchange(ref _poked, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), current);
        }
    }

    /// <summary>Waits until poked or until <paramref name="timeout"/> has passed on <paramref name="time"/>. True when poked.</summary>
    public async Task<bool> WaitAsync(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        var poked = Volatile.Read(ref _poked).Task;
        if (poked.IsCompleted)
        {
            return true;
        }

        using var stopDelay = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var delay = Task.Delay(timeout, time, stopDelay.Token);
        var first = await Task.WhenAny(poked, delay);
        await stopDelay.CancelAsync();
        cancellationToken.ThrowIfCancellationRequested();
        return first == poked;
    }
}
