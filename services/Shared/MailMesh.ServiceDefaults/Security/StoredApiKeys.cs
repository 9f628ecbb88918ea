using MailMesh.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MailMesh.ServiceDefaults.Security;

/// <summary>
/// The API keys made through the admin API (<see cref="ICredentialStore"/>), as this process knows them: read when the
/// host starts and again every <c>Admin:KeyRefreshInterval</c>, so that a key made or disabled on one replica opens
/// or stops opening every other within that interval, without a database round trip per request. While the store
/// cannot be read, the last list stays in force (a warning says so); configured keys never depend on it.
/// </summary>
public sealed partial class StoredApiKeys(
    IServiceProvider services,
    IOptionsMonitor<AdminApiOptions> options,
    TimeProvider time,
    ILogger<StoredApiKeys> logger) : RefreshedFromStore(options, time)
{
    private volatile IReadOnlyList<StoredApiKey> _keys = [];

    /// <summary>Every stored key (enabled and disabled); a new list object after each change.</summary>
    public IReadOnlyList<StoredApiKey> Current => _keys;

    /// <summary>The enabled stored keys of <paramref name="kind"/>.</summary>
    public IEnumerable<StoredApiKey> Enabled(ApiKeyKind kind) => _keys.Where(k => k.Kind == kind && k.Enabled);

    /// <summary>Reads the store now (after this process changed it, so that it takes effect here at once).</summary>
    public override async Task RefreshAsync(CancellationToken cancellationToken)
    {
        if (services.GetService<ICredentialStore>() is not { } store)
        {
            return;
        }

        var keys = await store.ListApiKeysAsync(cancellationToken);
        if (!SameAs(keys))
        {
            _keys = keys;
        }
    }

    /// <inheritdoc />
    protected override void OnReadFailed(Exception exception) => RefreshFailed(logger, _keys.Count, exception);

    /// <inheritdoc />
    protected override void OnReadRecovered() => Recovered(logger);

    private bool SameAs(IReadOnlyList<StoredApiKey> keys) => keys.Count == _keys.Count && keys.SequenceEqual(_keys);

    [LoggerMessage(9010, LogLevel.Warning, "Could not read the stored API keys; the last list ({Count} keys) stays in force until the store answers")]
    private static partial void RefreshFailed(ILogger logger, int count, Exception exception);

    [LoggerMessage(9011, LogLevel.Warning, "The stored API keys can be read again")]
    private static partial void Recovered(ILogger logger);
}

public static class StoredApiKeysExtensions
{
    /// <summary>Registers <see cref="StoredApiKeys"/> once (singleton and hosted service); idempotent.</summary>
    public static IServiceCollection AddStoredApiKeys(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        if (services.Any(d => d.ServiceType == typeof(StoredApiKeys)))
        {
            return services;
        }

        services.AddValidatedOptions<AdminApiOptions>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<StoredApiKeys>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<StoredApiKeys>());
        return services;
    }
}
