using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Mailbox.Deliveries;

/// <summary>
/// Drops the exactly-once keys of local deliveries older than <see cref="LocalDeliveryOptions.DeliveryKeyRetention"/>
/// (<see cref="IMailStore.PurgeDeliveryKeysAsync"/>), in batches, once an hour, so the table does not grow without
/// bound. Every replica may run it: the delete is idempotent. A failed round is logged and tried at the next one.
/// </summary>
internal sealed partial class DeliveryKeyPurger(
    IMailStore store,
    IOptions<LocalDeliveryOptions> options,
    TimeProvider time,
    ILogger<DeliveryKeyPurger> logger) : BackgroundService
{
    private const int BatchSize = 10_000;
    private static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            await PurgeOnceAsync(stoppingToken);
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    internal async Task<int> PurgeOnceAsync(CancellationToken cancellationToken)
    {
        var olderThan = time.GetUtcNow() - options.Value.DeliveryKeyRetention;
        var total = 0;
        try
        {
            int purged;
            do
            {
                purged = await store.PurgeDeliveryKeysAsync(olderThan, BatchSize, cancellationToken);
                total += purged;
            }
            while (purged == BatchSize);

            if (total > 0)
            {
                LogPurged(logger, total, olderThan);
            }
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            LogPurgeFailed(logger, ex);
        }

        return total;
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken cancellationToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = 6011, Level = LogLevel.Debug, Message = "Dropped {Count} local delivery keys older than {OlderThan}")]
    private static partial void LogPurged(ILogger logger, int count, DateTimeOffset olderThan);

    [LoggerMessage(EventId = 6012, Level = LogLevel.Warning, Message = "Dropping old local delivery keys failed; trying again at the next round")]
    private static partial void LogPurgeFailed(ILogger logger, Exception exception);
}
