using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery.Dkim;

/// <summary>
/// The configured DKIM keys, loaded at start and re-read when their file changes: the last-write time of the file
/// of the key about to sign is looked at, at most once per <see cref="DkimOptions.KeyCheckInterval"/> (a stat, no
/// watcher). A replaced file that cannot be loaded (half-written during a rotation) leaves the previous key signing,
/// and is logged; so does a file that disappears.
/// </summary>
internal sealed class DkimKeyRing
{
    private readonly DkimSigningKey[] _signing;

    public DkimKeyRing(IOptions<DkimOptions> options, TimeProvider time, ILogger<DkimKeyRing> logger)
    {
        var settings = options.Value;
        All = settings.Keys
            .Select((key, index) => new DkimSigningKey(key, index, settings.KeyCheckInterval, time, logger))
            .ToArray();

        // Of a domain's keys that sign, the last listed wins: a new selector is added below the old one.
        _signing = All.Where(k => k.Options.Sign)
            .GroupBy(k => k.Domain, StringComparer.OrdinalIgnoreCase)
            .Select(g => g.Last())
            .ToArray();
    }

    /// <summary>Every configured key, signing or not, in configuration order.</summary>
    public IReadOnlyList<DkimSigningKey> All { get; }

    public bool HasSigningKeys => _signing.Length > 0;

    /// <summary>
    /// The key that signs mail from <paramref name="fromDomain"/> (lower-case A-labels): the one for that domain, else
    /// for its nearest parent domain (most specific wins); null when none.
    /// </summary>
    public DkimSigningKey? For(string fromDomain)
    {
        DkimSigningKey? best = null;
        foreach (var key in _signing)
        {
            var matches = fromDomain.Length == key.Domain.Length
                ? string.Equals(fromDomain, key.Domain, StringComparison.OrdinalIgnoreCase)
                : fromDomain.Length > key.Domain.Length
                  && fromDomain[fromDomain.Length - key.Domain.Length - 1] == '.'
                  && fromDomain.EndsWith(key.Domain, StringComparison.OrdinalIgnoreCase);
            if (matches && (best is null || key.Domain.Length > best.Domain.Length))
            {
                best = key;
            }
        }

        return best;
    }
}

/// <summary>One configured key: its d= and s=, and the private key from its file, kept current.</summary>
internal sealed class DkimSigningKey
{
    private readonly TimeSpan _checkInterval;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private DkimPrivateKey _key;
    private DateTime _stamp;
    private long _checkedAt;

    public DkimSigningKey(DkimKeyOptions options, int index, TimeSpan checkInterval, TimeProvider time, ILogger logger)
    {
        Options = options;
        Index = index;
        Domain = options.Domain!.ToLowerInvariant();
        Selector = options.Selector!.ToLowerInvariant();
        _checkInterval = checkInterval;
        _time = time;
        _logger = logger;
        _stamp = File.GetLastWriteTimeUtc(options.KeyPath!);
        _key = DkimPrivateKey.FromPem(File.ReadAllText(options.KeyPath!));
        _checkedAt = time.GetTimestamp();
    }

    public DkimKeyOptions Options { get; }

    public int Index { get; }

    public string Domain { get; }

    public string Selector { get; }

    public string AlgorithmName => Current.AlgorithmName;

    /// <summary>The private key, re-read first if its file changed since it was last looked at.</summary>
    public DkimPrivateKey Current
    {
        get
        {
            lock (_lock)
            {
                if (_time.GetElapsedTime(_checkedAt) >= _checkInterval)
                {
                    _checkedAt = _time.GetTimestamp();
                    Reload();
                }

                return _key;
            }
        }
    }

    public byte[] Sign(ReadOnlySpan<byte> headerData)
    {
        // The key is not disposed when replaced (a signature may be under way on another thread); RSA keys are few.
        return Current.Sign(headerData);
    }

    private void Reload()
    {
        var path = Options.KeyPath!;
        try
        {
            var stamp = File.GetLastWriteTimeUtc(path);
            if (stamp == _stamp)
            {
                return;
            }

            var key = DkimPrivateKey.FromPem(File.ReadAllText(path));
            if (DkimPrivateKey.Name(key.Algorithm) != _key.AlgorithmName)
            {
                throw new InvalidDataException($"the new file holds a {key.KeyType} key, which cannot sign {_key.AlgorithmName}");
            }

            _key = key;
            _stamp = stamp;
            DkimLog.KeyReloaded(_logger, Index, Domain, Selector, path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or CryptographicException)
        {
            DkimLog.KeyReloadFailed(_logger, ex, Index, Domain, Selector, path);
        }
    }
}
