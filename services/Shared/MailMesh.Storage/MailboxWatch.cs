using System.Threading.Channels;

namespace MailMesh.Storage;

/// <summary>
/// One session's subscription to the changes of one account's folders (<see cref="IMailStore.WatchChanges"/>). Signals
/// queue until read; when more are pending than it keeps, the older ones fold into one "re-read everything" signal
/// (<see cref="MailboxChange.FolderId"/> null), so none is lost. Dispose it when the session ends.
/// </summary>
public sealed class MailboxWatch : IDisposable
{
    private const int Capacity = 32;

    private readonly Channel<MailboxChange> _signals;
    private readonly Action<MailboxWatch>? _unsubscribe;
    private int _overflowed;
    private int _disposed;

    internal MailboxWatch(long accountId, Action<MailboxWatch>? unsubscribe)
    {
        AccountId = accountId;
        _unsubscribe = unsubscribe;
        _signals = Channel.CreateBounded<MailboxChange>(
            new BoundedChannelOptions(Capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = false },
            _ => Volatile.Write(ref _overflowed, 1));
    }

    public long AccountId { get; }

    /// <summary>Waits for the next change (IMAP IDLE). Several changes may arrive one after the other; re-read what
    /// they name. Throws <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires.</summary>
    public async ValueTask<MailboxChange> WaitAsync(CancellationToken cancellationToken)
    {
        if (TryRead(out var change))
        {
            return change;
        }

        while (await _signals.Reader.WaitToReadAsync(cancellationToken))
        {
            if (TryRead(out change))
            {
                return change;
            }
        }

        throw new ObjectDisposedException(nameof(MailboxWatch));
    }

    /// <summary>Takes a pending change without waiting (IMAP NOOP, or between commands).</summary>
    public bool TryRead(out MailboxChange change)
    {
        if (Interlocked.Exchange(ref _overflowed, 0) != 0)
        {
            while (_signals.Reader.TryRead(out _))
            {
            }

            change = new MailboxChange(AccountId, null);
            return true;
        }

        return _signals.Reader.TryRead(out change);
    }

    internal void Signal(MailboxChange change) => _signals.Writer.TryWrite(change);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _signals.Writer.TryComplete();
            _unsubscribe?.Invoke(this);
        }
    }
}

/// <summary>The watches of one process, by account: stores signal them after a commit (and, in PostgreSQL, when another
/// replica's notification arrives).</summary>
internal sealed class MailboxChangeHub
{
    private readonly Lock _gate = new();
    private readonly Dictionary<long, List<MailboxWatch>> _watches = [];

    public MailboxWatch Subscribe(long accountId)
    {
        var watch = new MailboxWatch(accountId, Unsubscribe);
        lock (_gate)
        {
            if (!_watches.TryGetValue(accountId, out var list))
            {
                _watches[accountId] = list = [];
            }

            list.Add(watch);
        }

        return watch;
    }

    /// <summary>Whether anyone in this process watches the account (a store skips work for nobody).</summary>
    public bool IsWatched(long accountId)
    {
        lock (_gate)
        {
            return _watches.ContainsKey(accountId);
        }
    }

    public void Publish(MailboxChange change)
    {
        MailboxWatch[] targets;
        lock (_gate)
        {
            if (!_watches.TryGetValue(change.AccountId, out var list))
            {
                return;
            }

            targets = [.. list];
        }

        foreach (var watch in targets)
        {
            watch.Signal(change);
        }
    }

    /// <summary>Signals every watch to re-read everything: signals from other replicas may have been lost.</summary>
    public void PublishAll()
    {
        MailboxWatch[] targets;
        lock (_gate)
        {
            targets = [.. _watches.Values.SelectMany(list => list)];
        }

        foreach (var watch in targets)
        {
            watch.Signal(new MailboxChange(watch.AccountId, null));
        }
    }

    private void Unsubscribe(MailboxWatch watch)
    {
        lock (_gate)
        {
            if (_watches.TryGetValue(watch.AccountId, out var list) && list.Remove(watch) && list.Count == 0)
            {
                _watches.Remove(watch.AccountId);
            }
        }
    }
}

/// <summary>
/// A held POP3 maildrop lock (RFC 1939 §8: one session per maildrop). <see cref="TryAcquireAsync"/> takes it and renews
/// it every third of its lease while the session lives; <see cref="DisposeAsync"/> (QUIT, disconnect) releases it. A
/// process that dies stops renewing, and the lock is free again when its lease runs out.
/// </summary>
public sealed class MaildropLock : IAsyncDisposable
{
    /// <summary>The lease a lock is taken for when none is given.</summary>
    public static readonly TimeSpan DefaultLease = TimeSpan.FromMinutes(2);

    private readonly IMailStore _store;
    private readonly TimeProvider _time;
    private readonly TimeSpan _lease;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _lost = new();
    private Task _renewal = Task.CompletedTask;
    private int _disposed;

    private MaildropLock(IMailStore store, long accountId, TimeProvider time, TimeSpan lease)
    {
        _store = store;
        AccountId = accountId;
        _time = time;
        _lease = lease;
    }

    public long AccountId { get; }

    /// <summary>This holder's id in the store.</summary>
    public Guid HolderId { get; } = Guid.NewGuid();

    /// <summary>Fires when the lock could not be renewed before its lease ran out (another session may take it now:
    /// the session must not commit deletions and should end).</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>Takes the account's maildrop lock, or returns null while another session holds it.</summary>
    public static async Task<MaildropLock?> TryAcquireAsync(IMailStore store, long accountId, TimeProvider time, TimeSpan? lease, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(time);
        var duration = lease ?? DefaultLease;
        ArgumentOutOfRangeException.ThrowIfLessThan(duration, TimeSpan.FromSeconds(1), nameof(lease));
        var held = new MaildropLock(store, accountId, time, duration);
        var now = time.GetUtcNow();
        if (!await store.TryLockMaildropAsync(accountId, held.HolderId, now, now + duration, cancellationToken))
        {
            held._stop.Dispose();
            held._lost.Dispose();
            return null;
        }

        held._renewal = held.RenewAsync();
        return held;
    }

    private async Task RenewAsync()
    {
        var expires = _time.GetUtcNow() + _lease;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_lease / 3, _time, _stop.Token);
                var now = _time.GetUtcNow();
                var next = now + _lease;
                if (!await _store.TryLockMaildropAsync(AccountId, HolderId, now, next, _stop.Token))
                {
                    await _lost.CancelAsync();
                    return;
                }

                expires = next;
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // a store that fails now may answer at the next renewal; past the lease, the lock is lost
            catch (Exception)
#pragma warning restore CA1031
            {
                if (_time.GetUtcNow() >= expires)
                {
                    await _lost.CancelAsync();
                    return;
                }
            }
        }
    }

    /// <summary>Stops renewing and releases the lock (best effort: a lock that cannot be released expires).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync();
        await _renewal;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10), _time);
            await _store.ReleaseMaildropAsync(AccountId, HolderId, timeout.Token);
        }
#pragma warning disable CA1031 // the lease runs out on its own
        catch (Exception)
#pragma warning restore CA1031
        {
        }
        finally
        {
            _stop.Dispose();
            _lost.Dispose();
        }
    }
}
