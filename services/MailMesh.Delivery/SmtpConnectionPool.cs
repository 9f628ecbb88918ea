using System.Collections.Concurrent;
using System.Net;
using MailMesh.Delivery.Shaping;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>
/// What a pooled connection was opened to satisfy: the TLS mode, and for <see cref="TlsMode.Verified"/> the MX name
/// its certificate was verified against. A connection is only reused for the same key, so a message that needs a
/// verified session never rides on an opportunistic one that fell back to clear text. <see cref="Source"/> is the local
/// address the connection was bound to (a pool address; null: the OS's choice), so connections are never shared across
/// source addresses (docs/delivery.md "IP pools").
/// </summary>
internal readonly record struct ConnectionKey(TlsMode Tls, string? VerifiedHost, IPAddress? Source = null)
{
    public static ConnectionKey For(TlsMode mode, string hostName) =>
        new(mode, mode == TlsMode.Verified ? hostName.ToUpperInvariant() : null);
}

/// <summary>
/// Open SMTP connections per destination (address:port), shared by every concurrent delivery of the process.
/// A destination has <see cref="DeliveryOptions.MaxConnectionsPerDestination"/> slots: a delivery holds one for
/// the whole conversation, and a new connection is opened only when no idle one is left, so the sessions open to a
/// destination (busy plus idle) never exceed the limit. Idle connections are kept per <see cref="ConnectionKey"/>
/// (TLS state) within the destination's slots. Idle connections are reused for the next message (RSET
/// first), retired after <see cref="DeliveryOptions.MaxMessagesPerConnection"/> transactions, and closed with QUIT
/// after <see cref="DeliveryOptions.IdleConnectionTimeout"/> or at shutdown.
/// </summary>
internal sealed class SmtpConnectionPool : IAsyncDisposable
{
    private readonly ConcurrentDictionary<IPEndPoint, Destination> _destinations = new();

    // Traffic shaping: the site each connection was opened for and its slot of the site's connection limit.
    private readonly ConcurrentDictionary<SmtpConnection, Shaped> _shaped = new(ReferenceEqualityComparer.Instance);
    private readonly DeliveryOptions _options;
    private readonly TimeProvider _time;
    private readonly DeliveryMetrics _metrics;
    private readonly ILogger<SmtpConnectionPool> _logger;
    private readonly ITimer _sweeper;
    private readonly TimeSpan _sharedIdleTimeout;
    private int _disposed;

    public SmtpConnectionPool(
        IOptions<DeliveryOptions> options, TimeProvider time, DeliveryMetrics metrics, ILogger<SmtpConnectionPool> logger, IOptions<ShapingOptions> shaping)
    {
        _options = options.Value;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        _sharedIdleTimeout = shaping.Value.SharedIdleTimeout;
        var period = (_options.IdleConnectionTimeout < _sharedIdleTimeout ? _options.IdleConnectionTimeout : _sharedIdleTimeout) / 2;
        if (period < TimeSpan.FromMilliseconds(100))
        {
            period = TimeSpan.FromMilliseconds(100);
        }

        _sweeper = time.CreateTimer(static state => _ = ((SmtpConnectionPool)state!).SweepAsync(), this, period, period);
    }

    /// <summary>Idle connections across all destinations (tests, diagnostics).</summary>
    internal int IdleCount => _destinations.Values.Sum(d => d.Idle.Values.Sum(stack => stack.Count));

    /// <summary>
    /// Waits for a slot at <paramref name="destination"/> and hands out an idle connection when one is fresh
    /// enough. The caller opens a connection itself when <see cref="PoolLease.Connection"/> is null.
    /// </summary>
    public async Task<PoolLease> AcquireAsync(IPEndPoint destination, ConnectionKey key, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var entry = _destinations.GetOrAdd(destination, static (_, max) => new Destination(max), _options.MaxConnectionsPerDestination);
        // Bounded: a destination whose slots stay busy defers this delivery (RFC 3463 4.4.5, congestion) rather than
        // holding the work item until its lease runs out.
        if (!await entry.Slots.WaitAsync(_options.ConnectionSlotTimeout, cancellationToken))
        {
            throw new ConnectionSlotTimeoutException(destination, _options.ConnectionSlotTimeout);
        }

        var lease = new PoolLease(this, entry, destination, key);
        var stack = entry.IdleFor(key);
        while (stack.TryPop(out var idle))
        {
            if (idle.IsUsable && _time.GetUtcNow() - idle.LastUsed < IdleTimeout(idle))
            {
                lease.Connection = idle;
                lease.Reused = true;
                break;
            }

            await CloseAsync(idle, "idle too long");
        }

        if (lease.Connection is null)
        {
            // The caller will open a connection. Idle connections of another TLS state hold no slot, so when the
            // slots in use plus every idle connection already reach the limit, one of them is closed first: the
            // sessions open to the destination stay within MaxConnectionsPerDestination.
            var inUse = _options.MaxConnectionsPerDestination - entry.Slots.CurrentCount;
            if (inUse + entry.Idle.Values.Sum(s => s.Count) > _options.MaxConnectionsPerDestination)
            {
                foreach (var other in entry.Idle.Values)
                {
                    if (other.TryPop(out var evicted))
                    {
                        await CloseAsync(evicted, "making room for another TLS state");
                        break;
                    }
                }
            }
        }

        return lease;
    }

    /// <summary>Counts a newly opened connection (metrics).</summary>
    public void Opened(SmtpConnection connection)
    {
        _metrics.ConnectionOpened(connection.RemoteEndPoint.Address.ToString());
    }

    private async Task ReleaseAsync(Destination entry, ConnectionKey key, SmtpConnection? connection, bool reusable)
    {
        try
        {
            if (connection is not null)
            {
                connection.LastUsed = _time.GetUtcNow();
                if (reusable && connection.IsUsable && connection.Transactions < MaxMessages(connection) && Volatile.Read(ref _disposed) == 0)
                {
                    entry.IdleFor(key).Push(connection);
                }
                else
                {
                    // Closed before the slot is released, so the destination never sees more sessions than allowed.
                    await CloseAsync(connection, connection.IsUsable ? "retired" : "unusable");
                }
            }
        }
        finally
        {
            entry.Slots.Release();
        }
    }

    private async Task CloseAsync(SmtpConnection connection, string reason)
    {
        DeliveryLog.Closing(_logger, connection.RemoteEndPoint, reason);
        try
        {
            await connection.CloseAsync(sendQuit: true, _options.QuitTimeout);
        }
        finally
        {
            _metrics.ConnectionClosed();

            // Closed first, then the site's slot is given back: the site never sees more sessions than its limit.
            if (_shaped.TryRemove(connection, out var shaped) && shaped.Ticket is { } ticket)
            {
                await ticket.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Records the traffic-shaping site a new connection was opened for, with its slot of the site's connection limit
    /// (given back when the connection closes): the site's deliveries per connection and idle timeout apply to it.
    /// </summary>
    public void Attach(SmtpConnection connection, Site? site, ConnectionTicket? ticket)
    {
        if (site is not null || ticket is not null)
        {
            _shaped[connection] = new Shaped(site, ticket);
        }
    }

    /// <summary>
    /// Closes this process's idle connections to the traffic-shaping site <paramref name="siteName"/> (their slots of the
    /// site's connection limit go back for a connection to another address or TLS state); true when one was closed.
    /// </summary>
    public async Task<bool> CloseIdleAsync(string siteName, PoolLease? except = null)
    {
        var closed = false;
        foreach (var (destination, entry) in _destinations)
        {
            if (entry.Idle.Values.All(stack => stack.IsEmpty) || !await entry.Slots.WaitAsync(0))
            {
                continue;
            }

            try
            {
                foreach (var (key, stack) in entry.Idle)
                {
                    if (except is not null && except.Key == key && except.Destination.Equals(destination))
                    {
                        continue; // the caller's own address and TLS state: those it reuses (TryReuseIdleAsync)
                    }

                    var keep = new List<SmtpConnection>();
                    while (stack.TryPop(out var idle))
                    {
                        if (_shaped.TryGetValue(idle, out var shaped) && shaped.Site?.Name == siteName)
                        {
                            await CloseAsync(idle, "making room at its site");
                            closed = true;
                        }
                        else
                        {
                            keep.Add(idle);
                        }
                    }

                    for (var i = keep.Count - 1; i >= 0; i--)
                    {
                        stack.Push(keep[i]);
                    }
                }
            }
            finally
            {
                entry.Slots.Release();
            }
        }

        return closed;
    }

    /// <summary>
    /// Hands <paramref name="lease"/> an idle connection to its address and TLS state that went idle after the lease was
    /// taken (a delivery waiting for a slot of its site), checked with RSET; false when there is none.
    /// </summary>
    public async Task<bool> TryReuseIdleAsync(PoolLease lease)
    {
        if (!_destinations.TryGetValue(lease.Destination, out var entry))
        {
            return false;
        }

        var stack = entry.IdleFor(lease.Key);
        while (stack.TryPop(out var idle))
        {
            if (!idle.IsUsable || _time.GetUtcNow() - idle.LastUsed >= IdleTimeout(idle))
            {
                await CloseAsync(idle, "idle too long");
                continue;
            }

            try
            {
                // RFC 5321 §4.1.1.5: RSET both checks the connection and clears any state.
                if ((await idle.CommandAsync("RSET", _options.CommandTimeout, "RSET", CancellationToken.None)).IsSuccess)
                {
                    lease.Connection = idle;
                    lease.Reused = true;
                    return true;
                }

                idle.MarkUnusable();
            }
            catch (SmtpConnectionException ex)
            {
                DeliveryLog.StaleConnection(_logger, lease.Destination, ex);
            }

            await CloseAsync(idle, "discarded");
        }

        return false;
    }

    private TimeSpan IdleTimeout(SmtpConnection connection)
    {
        if (!_shaped.TryGetValue(connection, out var shaped))
        {
            return _options.IdleConnectionTimeout;
        }

        var timeout = shaped.Site?.Limits.IdleTimeout ?? _options.IdleConnectionTimeout;

        // A slot of a limit shared with other replicas is not kept idle long: they may be waiting for it.
        return shaped.Ticket is { Shared: true } && _sharedIdleTimeout < timeout ? _sharedIdleTimeout : timeout;
    }

    private int MaxMessages(SmtpConnection connection) =>
        _shaped.TryGetValue(connection, out var shaped) && shaped.Site?.Limits.MaxDeliveriesPerConnection is { } max ? max : _options.MaxMessagesPerConnection;

    private sealed record Shaped(Site? Site, ConnectionTicket? Ticket);

    /// <summary>Closes idle connections that exceeded the idle timeout. Holds a slot while closing each.</summary>
    private async Task SweepAsync()
    {
        foreach (var entry in _destinations.Values)
        {
            if (entry.Idle.Values.All(stack => stack.IsEmpty) || !await entry.Slots.WaitAsync(0))
            {
                continue;
            }

            try
            {
                foreach (var stack in entry.Idle.Values)
                {
                    var keep = new List<SmtpConnection>();
                    while (stack.TryPop(out var idle))
                    {
                        if (idle.IsUsable && _time.GetUtcNow() - idle.LastUsed < IdleTimeout(idle))
                        {
                            keep.Add(idle);
                        }
                        else
                        {
                            await CloseAsync(idle, "idle timeout");
                        }
                    }

                    for (var i = keep.Count - 1; i >= 0; i--)
                    {
                        stack.Push(keep[i]);
                    }
                }
            }
            catch (Exception ex)
            {
                // Runs on a timer: nothing may escape. A connection failing to close cleanly is closed anyway.
                DeliveryLog.SweepFailed(_logger, ex);
            }
            finally
            {
                entry.Slots.Release();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _sweeper.DisposeAsync();
        var closing = new List<Task>();
        foreach (var stack in _destinations.Values.SelectMany(entry => entry.Idle.Values))
        {
            while (stack.TryPop(out var idle))
            {
                closing.Add(CloseAsync(idle, "shutdown"));
            }
        }

        await Task.WhenAll(closing);
    }

    internal sealed class Destination(int maxConnections)
    {
        public SemaphoreSlim Slots { get; } = new(maxConnections, maxConnections);

        public ConcurrentDictionary<ConnectionKey, ConcurrentStack<SmtpConnection>> Idle { get; } = new();

        public ConcurrentStack<SmtpConnection> IdleFor(ConnectionKey key) => Idle.GetOrAdd(key, static _ => new());
    }

    /// <summary>A slot at one destination, with the connection used in it. Dispose returns the slot.</summary>
    internal sealed class PoolLease : IAsyncDisposable
    {
        private readonly SmtpConnectionPool _pool;
        private readonly Destination _entry;
        private bool _reusable;
        private bool _released;

        internal PoolLease(SmtpConnectionPool pool, Destination entry, IPEndPoint destination, ConnectionKey key)
        {
            _pool = pool;
            _entry = entry;
            Destination = destination;
            Key = key;
        }

        public IPEndPoint Destination { get; }

        /// <summary>The TLS state a connection in this slot must have to go back to the pool.</summary>
        public ConnectionKey Key { get; }

        /// <summary>The connection in this slot: a pooled one, or one the holder opened; null before that.</summary>
        public SmtpConnection? Connection { get; set; }

        /// <summary>True when <see cref="Connection"/> came from the pool rather than being opened for this lease.</summary>
        public bool Reused { get; internal set; }

        /// <summary>Keep the connection for the next message when the slot is returned.</summary>
        public void KeepAlive() => _reusable = true;

        /// <summary>Throws the current connection away (e.g. a pooled one that failed RSET), counting it closed.</summary>
        public async Task DiscardConnectionAsync()
        {
            if (Connection is { } connection)
            {
                Connection = null;
                await _pool.CloseAsync(connection, "discarded");
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_released)
            {
                return;
            }

            _released = true;
            await _pool.ReleaseAsync(_entry, Key, Connection, _reusable);
        }
    }
}

/// <summary>No connection slot to a destination became free within <see cref="DeliveryOptions.ConnectionSlotTimeout"/>.</summary>
internal sealed class ConnectionSlotTimeoutException(IPEndPoint destination, TimeSpan timeout)
    : Exception($"no connection slot to {destination} within {timeout}")
{
    public IPEndPoint Destination { get; } = destination;
}
