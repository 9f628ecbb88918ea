using System.Collections.Concurrent;
using System.Net;
using MailMesh.ServiceDefaults.Security;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress;

/// <summary>
/// Counts open SMTP connections in total and per client address (an IPv6 client counts per /64, the allocation one
/// subscriber controls). <see cref="TryEnter"/> and the returned lease's Dispose pair up exactly.
/// </summary>
internal sealed class ConnectionLimiter(IOptions<IngressOptions> options)
{
    private readonly IngressOptions _options = options.Value;
    private readonly ConcurrentDictionary<string, int> _perClient = new(StringComparer.Ordinal);
    private int _total;

    public int Open => Volatile.Read(ref _total);

    /// <summary>Takes a slot for the client, or returns null (with the limit that was hit) when none is free.</summary>
    public Lease? TryEnter(IPAddress? client, out string? limit)
    {
        limit = null;
        if (Interlocked.Increment(ref _total) > _options.MaxConnections)
        {
            Interlocked.Decrement(ref _total);
            limit = "max_connections";
            return null;
        }

        var key = Key(client);
        var count = _perClient.AddOrUpdate(key, 1, static (_, n) => n + 1);
        if (count > _options.MaxConnectionsPerIp)
        {
            Release(key);
            limit = "max_connections_per_ip";
            return null;
        }

        return new Lease(this, key);
    }

    private void Release(string key)
    {
        Interlocked.Decrement(ref _total);
        while (true)
        {
            var current = _perClient.GetValueOrDefault(key);
            if (current == 0)
            {
                return;
            }

            if (current == 1)
            {
                if (_perClient.TryRemove(new KeyValuePair<string, int>(key, current)))
                {
                    return;
                }
            }
            else if (_perClient.TryUpdate(key, current - 1, current))
            {
                return;
            }
        }
    }

    private static string Key(IPAddress? address) => ClientNetwork.Key(address);

    internal sealed class Lease(ConnectionLimiter owner, string key) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Release(key);
            }
        }
    }
}
