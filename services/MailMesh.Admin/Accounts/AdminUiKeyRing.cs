using System.Xml.Linq;
using MailMesh.Storage;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.Repositories;

namespace MailMesh.Admin;

/// <summary>
/// The Data Protection key ring that protects the UI's session cookie and antiforgery tokens, kept in the store
/// (<see cref="IAdminUiKeyStore"/>) instead of the process: every replica on one PostgreSQL reads the same keys, so a
/// cookie made by one replica is accepted by the others and by the next pod after a restart. One application name for
/// every replica (Data Protection otherwise isolates apps by their content root path).
/// </summary>
internal static partial class AdminUiKeyRing
{
    /// <summary>The Data Protection application name: a cookie is valid wherever this name and the key ring are shared.</summary>
    internal const string ApplicationName = "MailMesh.Admin";

    /// <summary>The purpose of the start-up protection that loads (or makes) the key ring.</summary>
    private const string WarmUpPurpose = "MailMesh.Admin.KeyRing.WarmUp";

    public static IServiceCollection AddAdminUiKeyRing(this IServiceCollection services)
    {
        services.AddDataProtection().SetApplicationName(ApplicationName);
        services.AddOptions<KeyManagementOptions>().Configure<IServiceProvider>((options, provider) => options.XmlRepository = new StoreRepository(provider));
        services.AddSingleton<IHostedService, WarmUp>();
        return services;
    }

    /// <summary>
    /// The store's key ring, resolved on first use: the antiforgery middleware builds Data Protection while the app is
    /// mapped, before start-up validates Storage and ConnectionStrings:Spool (whose error must be the one reported).
    /// </summary>
    private sealed class StoreRepository(IServiceProvider provider) : IXmlRepository
    {
        private IAdminUiKeyStore Keys => provider.GetRequiredService<IAdminUiKeyStore>();

        public IReadOnlyCollection<XElement> GetAllElements() => Keys.GetAllElements();

        public void StoreElement(XElement element, string friendlyName) => Keys.StoreElement(element, friendlyName);
    }

    /// <summary>
    /// Loads the key ring before the UI serves (in StartingAsync, after the schema migration) under the store's lock:
    /// replicas starting together then agree on one first key instead of each making its own and refusing the others'
    /// cookies until their next key ring refresh. A store that does not answer is logged, and the key ring is loaded on
    /// first use instead.
    /// </summary>
    /// <remarks>The store is resolved here, not in the constructor: after the options (Storage, ConnectionStrings) were validated.</remarks>
    private sealed partial class WarmUp(IServiceProvider services, ILogger<WarmUp> logger) : IHostedLifecycleService
    {
        public async Task StartingAsync(CancellationToken cancellationToken)
        {
            try
            {
                var keys = services.GetRequiredService<IAdminUiKeyStore>();
                await using (await keys.LockAsync(cancellationToken))
                {
                    services.GetRequiredService<IDataProtectionProvider>().CreateProtector(WarmUpPurpose).Protect([1]);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                KeyRingNotLoaded(logger, e.Message);
            }
        }

        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        [LoggerMessage(3405, LogLevel.Warning, "Admin UI: the session key ring could not be loaded at start-up ({Error}); it is loaded on first use")]
        private static partial void KeyRingNotLoaded(ILogger logger, string error);
    }
}
