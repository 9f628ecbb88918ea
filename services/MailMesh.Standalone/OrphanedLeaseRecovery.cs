using MailMesh.Storage;

namespace MailMesh.Standalone;

/// <summary>
/// Standalone owns its SQLite spool alone, so any recipient still in flight at start-up was being delivered by this
/// process before it stopped or crashed. Hand those back to the queue at once instead of waiting out their leases
/// (Queue:LeaseDuration): a crash delays nothing that got a 250.
/// </summary>
internal sealed partial class OrphanedLeaseRecovery(ISpool spool, TimeProvider time, ILogger<OrphanedLeaseRecovery> logger) : IHostedLifecycleService
{
    // StartingAsync runs after the schema migration (registered first by AddMailMeshStorage) and before any
    // StartAsync, so the Queue scheduler finds the released recipients on its first claim.
    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        var released = await spool.ReleaseLeasesAsync(time.GetUtcNow(), cancellationToken);
        if (released > 0)
        {
            LogReleased(logger, released);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 9001, Level = LogLevel.Information, Message = "Returned {Count} recipients left in flight by the previous run to the queue")]
    private static partial void LogReleased(ILogger logger, int count);
}
