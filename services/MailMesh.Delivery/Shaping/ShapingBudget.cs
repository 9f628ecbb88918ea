using System.Collections.Concurrent;
using System.Data.Common;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery.Shaping;

/// <summary>
/// The budgets a delivery takes from: shared by every Delivery replica through <see cref="IShapingBudgetStore"/>
/// (PostgreSQL, one statement per take) or, without a shared store, in this process (<see cref="LocalBudget"/>). While
/// the shared store cannot be reached, each replica falls back to its local budget with its share of the limit
/// (<see cref="ShapingOptions.Fallback"/>), and goes back to the shared one as soon as the store answers.
/// </summary>
internal sealed class ShapingBudget : IAsyncDisposable
{
    private readonly IShapingBudgetStore? _store;
    private readonly LocalBudget _local;
    private readonly ShapingOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ShapingBudget> _logger;
    private readonly ConcurrentDictionary<Guid, string> _held = new();
    private readonly ITimer? _renewer;
    private int _degraded;
    private long _statements;
    private long _statementTicks;

    public ShapingBudget(IShapingBudgetStore? store, IOptions<ShapingOptions> options, TimeProvider time, ILogger<ShapingBudget> logger)
    {
        _store = store;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _local = new LocalBudget(time);
        if (store is not null)
        {
            var period = _options.ConnectionLeaseDuration / 3;
            _renewer = time.CreateTimer(static state => _ = ((ShapingBudget)state!).RenewAsync(), this, period, period);
        }
    }

    /// <summary>True when the budgets are shared across replicas (a shared store is configured).</summary>
    public bool IsShared => _store is not null;

    /// <summary>Statements sent to the shared store so far (the cost figures of docs/performance.md).</summary>
    public long Statements => Interlocked.Read(ref _statements);

    /// <summary>Time spent waiting for the shared store's answers so far (with <see cref="Statements"/>: the mean latency).</summary>
    public TimeSpan StatementTime => _time.GetElapsedTime(0, Interlocked.Read(ref _statementTicks));

    /// <summary>This process's own budget (tests, diagnostics).</summary>
    internal LocalBudget Local => _local;

    /// <summary>A connection slot of <paramref name="key"/> under <paramref name="limit"/>, or null when all are held.</summary>
    public async Task<ConnectionTicket?> TryTakeConnectionAsync(string key, int limit, CancellationToken cancellationToken)
    {
        if (_store is not null)
        {
            var holder = Guid.NewGuid();
            var now = _time.GetUtcNow();
            var (ok, taken) = await SharedAsync(
                token => _store.TryTakeConnectionAsync(key, limit, holder, now, now + _options.ConnectionLeaseDuration, token), cancellationToken);
            if (ok)
            {
                if (!taken)
                {
                    return null;
                }

                _held[holder] = key;
                return new ConnectionTicket(this, key, holder, Shared: true);
            }
        }

        return _local.TryTakeConnection(key, FallbackLimit(limit)) ? new ConnectionTicket(this, key, Guid.Empty, Shared: false) : null;
    }

    /// <summary>A token of the bucket <paramref name="key"/>: the wait before using it, or null if longer than <paramref name="maxWait"/>.</summary>
    public async Task<TimeSpan?> TryTakeTokenAsync(string key, Rate rate, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        if (_store is not null)
        {
            var now = _time.GetUtcNow();
            var (ok, wait) = await SharedAsync(
                token => _store.TryTakeTokenAsync(key, rate.PerSecond, rate.Burst, maxWait, now, token), cancellationToken);
            if (ok)
            {
                return wait;
            }
        }

        var share = _store is null || _options.Fallback == ShapingFallback.PerReplica ? rate
            : new Rate(rate.PerSecond / _options.ExpectedReplicas, Math.Max(1, Math.Floor(rate.Burst / _options.ExpectedReplicas)));
        return _local.TryTakeToken(key, share, maxWait);
    }

    internal async Task ReleaseAsync(ConnectionTicket ticket)
    {
        if (!ticket.Shared)
        {
            _local.ReleaseConnection(ticket.Key);
            return;
        }

        _held.TryRemove(ticket.Holder, out _);

        // Best effort: a slot not given back expires with its lease.
        await SharedAsync(async token =>
        {
            await _store!.ReleaseConnectionAsync(ticket.Key, ticket.Holder, token);
            return true;
        }, CancellationToken.None);
    }

    private int FallbackLimit(int limit) =>
        _store is null || _options.Fallback == ShapingFallback.PerReplica ? limit : Math.Max(1, limit / _options.ExpectedReplicas);

    /// <summary>One statement, bounded by Delivery:Shaping:StoreTimeout; Ok false when the store failed.</summary>
    private async Task<(bool Ok, T? Value)> SharedAsync<T>(Func<CancellationToken, Task<T>> statement, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _statements);
        var started = _time.GetTimestamp();
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.StoreTimeout);
            var value = await statement(timeout.Token).WaitAsync(_options.StoreTimeout, _time, cancellationToken);
            Interlocked.Add(ref _statementTicks, _time.GetTimestamp() - started);
            if (Interlocked.Exchange(ref _degraded, 0) != 0)
            {
                ShapingLog.SharedBudgetBack(_logger);
            }

            return (true, value);
        }
        catch (Exception ex) when (ex is DbException or TimeoutException or InvalidOperationException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            if (Interlocked.Exchange(ref _degraded, 1) == 0)
            {
                ShapingLog.SharedBudgetDown(_logger, ex, _options.Fallback, _options.ExpectedReplicas);
            }

            return (false, default);
        }
    }

    /// <summary>Extends the leases of every connection this replica holds open (one statement).</summary>
    private async Task RenewAsync()
    {
        try
        {
            if (_store is null || _held.IsEmpty)
            {
                return;
            }

            var until = _time.GetUtcNow() + _options.ConnectionLeaseDuration;
            await SharedAsync(async token =>
            {
                await _store.RenewConnectionsAsync([.. _held.Keys], until, token);
                return true;
            }, CancellationToken.None);
        }
        catch (Exception ex)
        {
            // On a timer: nothing may escape. A lease not renewed expires, which only lets another connection in early.
            ShapingLog.RenewFailed(_logger, ex);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_renewer is not null)
        {
            await _renewer.DisposeAsync();
        }
    }
}

/// <summary>A connection slot held; dispose gives it back (once).</summary>
internal sealed record ConnectionTicket(ShapingBudget Budget, string Key, Guid Holder, bool Shared) : IAsyncDisposable
{
    private int _released;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            await Budget.ReleaseAsync(this);
        }
    }
}
