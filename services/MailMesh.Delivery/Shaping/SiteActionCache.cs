using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery.Shaping;

/// <summary>
/// The live site actions (suspensions, lowered limits) as this replica knows them: read from the shared store every
/// <see cref="ShapingOptions.RefreshInterval"/>, and at once for the ones this replica adds. While the store cannot be
/// read, the last list read stays in force (actions end at their own time regardless).
/// </summary>
internal sealed class SiteActionCache(ISiteActionStore store, IOptions<ShapingOptions> options, TimeProvider time, ILogger<SiteActionCache> logger)
    : BackgroundService
{
    private readonly ShapingOptions _options = options.Value;
    private volatile IReadOnlyList<SiteAction> _live = [];

    /// <summary>The actions as last read (some may have ended since: callers compare Until with now).</summary>
    public IReadOnlyList<SiteAction> Live => _live;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Enabled)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            await RefreshAsync(stoppingToken);
            try
            {
                await Task.Delay(_options.RefreshInterval, time, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }
    }

    /// <summary>Reads the live actions now; false when the store did not answer.</summary>
    public async Task<bool> RefreshAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.StoreTimeout * 2);
            _live = await store.ListLiveAsync(time.GetUtcNow(), timeout.Token);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            ShapingLog.RefreshFailed(logger, ex);
            return false;
        }
    }

    /// <summary>Stores an action for every replica and applies it here at once (here only, if the store is down).</summary>
    public async Task AddAsync(SiteAction action, CancellationToken cancellationToken)
    {
        _live = [.. _live, action];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.StoreTimeout * 2);
        await store.AddAsync(action, timeout.Token);
    }

    /// <summary>The suspension of <paramref name="site"/> from <paramref name="sourceIp"/> lasting longest, if any is live.</summary>
    public SiteAction? Suspension(string site, string sourceIp, DateTimeOffset now)
    {
        SiteAction? longest = null;
        foreach (var action in _live)
        {
            if (action.Kind == SiteActionKind.Suspend && action.Until > now && Applies(action, site, sourceIp)
                && (longest is null || action.Until > longest.Until))
            {
                longest = action;
            }
        }

        return longest;
    }

    /// <summary><paramref name="limits"/> lowered by the live Limit actions of the site (the lowest value wins).</summary>
    public ShapingLimits Lowered(ShapingLimits limits, string site, string sourceIp, DateTimeOffset now)
    {
        foreach (var action in _live)
        {
            if (action.Kind != SiteActionKind.Limit || action.Until <= now || !Applies(action, site, sourceIp))
            {
                continue;
            }

            if (action.MaxConnections is { } connections && (limits.MaxConnections is not { } current || connections < current))
            {
                limits = limits with { MaxConnections = connections };
            }

            if (action.MessagesPerSecond is { } rate && rate > 0 && (limits.MessageRate is not { } currentRate || rate < currentRate.PerSecond))
            {
                limits = limits with { MessageRate = new Rate(rate, Math.Max(1, Math.Floor(rate))) };
            }
        }

        return limits;
    }

    private static bool Applies(SiteAction action, string site, string sourceIp) =>
        string.Equals(action.Site, site, StringComparison.OrdinalIgnoreCase)
        && (action.SourceIp is null || string.Equals(action.SourceIp, sourceIp, StringComparison.OrdinalIgnoreCase));
}
