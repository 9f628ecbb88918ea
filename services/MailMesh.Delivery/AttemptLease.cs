using MailMesh.Storage;

namespace MailMesh.Delivery;

/// <summary>
/// The lease of one delivery attempt, from the moment it was taken (<see cref="ISpool.StartAttemptAsync"/>) until its
/// result is recorded: renews it every third of its duration while the attempt runs, and cancels <see cref="Token"/>
/// when the lease is re-issued (a renewal is refused) or when its confirmed expiry comes within
/// <see cref="DeliveryOptions.LeaseMargin"/> without a successful renewal (the spool is unreachable, so the scheduler
/// may soon re-issue it). The SMTP transaction runs under that token, so it never reaches MAIL FROM or the end of data
/// on a lease that another attempt may hold.
/// </summary>
/// <remarks>
/// Unconfirmed is not lost: the renewals go on (with back-off) after the deadline, until the lease is re-issued or the
/// attempt is over, because an attempt past its end of data still has a result to record. Queue stops the lease clock
/// while the spool is unreachable (<see cref="ISpool.BeatLeaseClockAsync"/>), so when the database comes back the
/// first renewal usually finds the lease still this attempt's and confirms it again; a refused one proves it was
/// re-issued (<see cref="IsReissued"/>).
/// </remarks>
internal sealed class AttemptLease : IAsyncDisposable
{
    private readonly ISpool _spool;
    private readonly Guid _messageId;
    private readonly Guid _ownerId;
    private readonly TimeSpan _duration;
    private readonly DeliveryOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly ITimer _deadline;
    private readonly Task _renewals;
    private long _confirmedUntilTicks;
    private int _reissued;
    private int _unconfirmed;

    private AttemptLease(ISpool spool, Guid messageId, Guid leaseId, Guid ownerId, TimeSpan duration, DateTimeOffset confirmedUntil,
        DeliveryOptions options, TimeProvider time, ILogger logger)
    {
        _spool = spool;
        _messageId = messageId;
        LeaseId = leaseId;
        _ownerId = ownerId;
        _duration = duration;
        _options = options;
        _time = time;
        _logger = logger;
        _confirmedUntilTicks = confirmedUntil.UtcTicks;
        _deadline = time.CreateTimer(static state => ((AttemptLease)state!).Expire(), this, DeadlineIn(confirmedUntil), Timeout.InfiniteTimeSpan);
        _renewals = RenewLoopAsync();
    }

    public Guid LeaseId { get; }

    /// <summary>Cancelled when the lease is lost or can no longer be confirmed.</summary>
    public CancellationToken Token => _lost.Token;

    /// <summary>The lease was re-issued or could not be confirmed in time: <see cref="Token"/> is cancelled.</summary>
    public bool IsLost => IsReissued || Volatile.Read(ref _unconfirmed) != 0;

    /// <summary>The lease was positively re-issued (a renewal was refused): another attempt may hold it.</summary>
    public bool IsReissued => Volatile.Read(ref _reissued) != 0;

    public string Reason => IsReissued ? "was re-issued" : IsLost ? "could not be renewed before it ran out" : "is held";

    /// <summary>
    /// <see cref="DeliveryOptions.LeaseMargin"/>, but never more than a quarter of the lease: a short lease (tests, or a
    /// small Queue:LeaseDuration) would otherwise be "unconfirmed" the moment it is taken.
    /// </summary>
    public TimeSpan Margin => _options.LeaseMargin < _duration / 4 ? _options.LeaseMargin : _duration / 4;

    /// <summary>The latest expiry the spool confirmed for this owner.</summary>
    public DateTimeOffset ConfirmedUntil => new(Interlocked.Read(ref _confirmedUntilTicks), TimeSpan.Zero);

    /// <summary>Starts keeping a lease that <see cref="ISpool.StartAttemptAsync"/> just took until <paramref name="confirmedUntil"/>.</summary>
    public static AttemptLease Start(ISpool spool, Guid messageId, Guid leaseId, Guid ownerId, TimeSpan duration, DateTimeOffset confirmedUntil,
        DeliveryOptions options, TimeProvider time, ILogger logger) =>
        new(spool, messageId, leaseId, ownerId, duration, confirmedUntil, options, time, logger);

    private TimeSpan DeadlineIn(DateTimeOffset confirmedUntil)
    {
        var due = confirmedUntil - Margin - _time.GetUtcNow();
        return due > TimeSpan.Zero ? due : TimeSpan.Zero;
    }

    private void Expire()
    {
        Volatile.Write(ref _unconfirmed, 1);
        Cancel();
    }

    private void Reissued()
    {
        Volatile.Write(ref _reissued, 1);
        Cancel();
    }

    private void Cancel()
    {
        try
        {
            _lost.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Disposed meanwhile: the attempt is over.
        }
    }

    private async Task RenewLoopAsync()
    {
        var interval = _duration / 3 > TimeSpan.FromSeconds(1) ? _duration / 3 : TimeSpan.FromSeconds(1);
        var failures = 0;
        try
        {
            while (!IsReissued)
            {
                var wait = failures == 0 ? interval : TimeSpan.FromMilliseconds(Math.Min(interval.TotalMilliseconds, 250 * Math.Pow(2, failures)));
                // Every attempt ends during this wait: awaited without throwing, its end costs no exception (one per mail
                // was 745 a second at 740 mails a second, issue 8).
                await Task.Delay(wait, _time, _stop.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (_stop.IsCancellationRequested)
                {
                    return;
                }

                var until = _time.GetUtcNow() + _duration;
                try
                {
                    using var timeout = new CancellationTokenSource(_options.StoreTimeout, _time);
                    using var linked = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, timeout.Token);
                    var renewed = await _spool.RenewLeaseAsync(_messageId, LeaseId, _ownerId, until, linked.Token)
                        .WaitAsync(_options.StoreTimeout, _time, _stop.Token);
                    if (!renewed)
                    {
                        Reissued();
                        return;
                    }

                    failures = 0;
                    Interlocked.Exchange(ref _confirmedUntilTicks, until.UtcTicks);
                    _deadline.Change(DeadlineIn(until), Timeout.InfiniteTimeSpan);
                }
                catch (Exception ex) when (!_stop.IsCancellationRequested)
                {
                    // Unknown whether it was renewed: the deadline timer stops the attempt if no renewal succeeds in time.
                    failures++;
                    DeliveryLog.RenewFailed(_logger, ex, LeaseId, _messageId, ConfirmedUntil);
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // The attempt is over.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _renewals;
        await _deadline.DisposeAsync();
        _stop.Dispose();
        _lost.Dispose();
    }
}
