using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MailMesh.ServiceDefaults.Security;

/// <summary>
/// Credentials made through the admin API as this process knows them (<see cref="StoredApiKeys"/>, Ingress's stored
/// SMTP users): read when the host starts and again every <c>Admin:KeyRefreshInterval</c>, so a change made on one
/// replica takes effect on every other within that interval without a database round trip per request. While the store
/// cannot be read the last list stays in force: the first failure and the recovery are reported once each.
/// </summary>
public abstract class RefreshedFromStore(IOptionsMonitor<AdminApiOptions> options, TimeProvider time) : BackgroundService
{
    private bool _failing;

    /// <summary>Reads the store now (also after this process changed it, so that it takes effect here at once).</summary>
    public abstract Task RefreshAsync(CancellationToken cancellationToken);

    /// <summary>The store could not be read (called once per outage); log it at Warning.</summary>
    protected abstract void OnReadFailed(Exception exception);

    /// <summary>The store can be read again after <see cref="OnReadFailed"/>; log it at Warning too.</summary>
    protected abstract void OnReadRecovered();

    /// <inheritdoc />
    protected sealed override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RefreshAsync(stoppingToken);
                if (_failing)
                {
                    _failing = false;
                    OnReadRecovered();
                }
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                if (!_failing)
                {
                    _failing = true;
                    OnReadFailed(ex);
                }
            }

            try
            {
                await Task.Delay(options.CurrentValue.KeyRefreshInterval, time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
