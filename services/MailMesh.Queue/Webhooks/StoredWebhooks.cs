using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Webhooks;

/// <summary>
/// The webhook endpoints made through the admin API (<see cref="IWebhookStore"/>), as this Queue replica knows them:
/// read at start and every <see cref="WebhookOptions.RefreshInterval"/>, so an endpoint made, changed or disabled on one
/// replica takes effect on every other within that interval without a database round trip per event. While the store
/// cannot be read, the last list stays in force (a warning says so). The same loop prunes the delivery history older
/// than <see cref="WebhookOptions.HistoryRetention"/> every <see cref="PruneInterval"/>.
/// </summary>
internal sealed class StoredWebhooks(
    IServiceProvider services,
    IOptionsMonitor<WebhookOptions> options,
    TimeProvider time,
    ILogger<StoredWebhooks> logger) : BackgroundService
{
    /// <summary>The loop's name in <see cref="QueueLoopMonitor"/>.</summary>
    internal const string LoopName = "webhooks";

    /// <summary>How often the history is pruned (each replica; the delete is idempotent).</summary>
    internal static readonly TimeSpan PruneInterval = TimeSpan.FromHours(1);

    private volatile IReadOnlyList<WebhookTarget> _enabled = [];
    private DateTimeOffset? _prunedAt;
    private bool _failing;

    /// <summary>The enabled stored endpoints; a new list object after each change.</summary>
    public IReadOnlyList<WebhookTarget> Enabled => _enabled;

    private IWebhookStore? Store => services.GetService<IWebhookStore>();

    /// <summary>Reads the store now (after this process changed it, so that the change takes effect here at once).</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        if (Store is not { } store)
        {
            return;
        }

        var endpoints = await store.ListEndpointsAsync(cancellationToken);
        _enabled = [.. endpoints.Where(e => e.Enabled).Select(WebhookTarget.Of)];
    }

    /// <summary>Appends POST outcomes to the history; a store that cannot be written loses them (with a warning), never the event.</summary>
    public async Task RecordAsync(IReadOnlyList<WebhookDelivery> deliveries, CancellationToken cancellationToken)
    {
        if (deliveries.Count == 0 || Store is not { } store)
        {
            return;
        }

        try
        {
            await store.RecordDeliveriesAsync(deliveries, cancellationToken);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            logger.HistoryRecordFailed(deliveries.Count, ex);
        }
    }

    /// <summary>Deletes history older than the retention when a prune is due; returns the rows deleted.</summary>
    internal async Task<int> PruneIfDueAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (Store is not { } store || (_prunedAt is { } last && now - last < PruneInterval))
        {
            return 0;
        }

        var olderThan = now - options.CurrentValue.HistoryRetention;
        try
        {
            var pruned = await store.PruneDeliveriesAsync(olderThan, cancellationToken);
            _prunedAt = now;
            if (pruned > 0)
            {
                logger.HistoryPruned(pruned, olderThan);
            }

            return pruned;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            logger.HistoryPruneFailed(ex);
            return 0;
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var monitor = services.GetService<QueueLoopMonitor>();
        monitor?.Started(LoopName);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RefreshAsync(stoppingToken);
                await PruneIfDueAsync(stoppingToken);
                monitor?.Completed(LoopName);
                if (_failing)
                {
                    _failing = false;
                    logger.StoredWebhooksRecovered();
                }
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                monitor?.Failed(LoopName);
                if (!_failing)
                {
                    _failing = true;
                    logger.StoredWebhooksFailed(_enabled.Count, ex);
                }
            }

            try
            {
                await Task.Delay(options.CurrentValue.RefreshInterval, time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
