using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue;

/// <summary>
/// Deletes messages whose recipients are all final once they are older than <see cref="QueueOptions.PurgeCompletedAfter"/>,
/// so "where is my message" answers for a while after completion and the spool does not grow without bound.
/// Every replica may run it: the delete is idempotent.
/// </summary>
internal sealed class CompletedMessagePurger(
    ISpool spool,
    IOptions<QueueOptions> options,
    TimeProvider time,
    ILogger<CompletedMessagePurger> logger) : BackgroundService
{
    private readonly QueueOptions _options = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.PurgeInterval, time);
        do
        {
            await PurgeOnceAsync(stoppingToken);
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    internal async Task<int> PurgeOnceAsync(CancellationToken cancellationToken)
    {
        var olderThan = time.GetUtcNow() - _options.PurgeCompletedAfter;
        try
        {
            var purged = await spool.PurgeCompletedAsync(olderThan, cancellationToken);
            if (purged > 0)
            {
                logger.Purged(purged, olderThan);
            }

            return purged;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            logger.PurgeFailed(ex);
            return 0;
        }
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
}
