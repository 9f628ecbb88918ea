using MailMesh.Mailbox.Accounts;
using MailMesh.Mailbox.Deliveries;
using MailMesh.Mailbox.Protocols;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using MassTransit;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MailMesh.Mailbox;

public static class MailboxExtensions
{
    /// <summary>
    /// Registers the Mailbox service (issue 9): local mailboxes, delivery into them, and the POP3 and IMAP listeners.
    /// </summary>
    public static IHostApplicationBuilder AddMailbox(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddMailboxStore();
        builder.AddMailboxProtocols();
        return builder;
    }

    /// <summary>
    /// The mail store and what fills it: configured accounts synced at start (<see cref="AccountSync"/>), the
    /// <c>DeliverLocalMessage</c> consumer, the admin API's authentication, and readiness on the store.
    /// </summary>
    public static IHostApplicationBuilder AddMailboxStore(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddMailMeshStorage(defaultMaxPoolSize: 5);
        builder.AddAdminAuthentication();
        builder.Services.AddValidatedOptions<LocalDeliveryOptions>();
        builder.Services.AddValidatedOptions<MailboxAccountsOptions>();
        builder.Services.AddMetrics();
        builder.Services.TryAddSingleton<LocalDeliveryMetrics>();
        builder.Services.AddHostedService<AccountSync>();
        builder.Services.AddHostedService<DeliveryKeyPurger>();
        builder.Services.AddHealthChecks().AddStoreCheck().AddCheck<MailStoreHealthCheck>("mail-store", tags: [ServiceDefaultsExtensions.ReadyTag]);
        builder.AddBusPart(bus => bus.AddConsumer<LocalDeliveryConsumer, LocalDeliveryConsumerDefinition>());
        return builder;
    }

    /// <summary>The admin API of the Mailbox service (<see cref="MailboxEndpoints"/>).</summary>
    public static WebApplication MapMailbox(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapMailboxEndpoints();
        return app;
    }
}

/// <summary>Ready only while the mail store answers.</summary>
internal sealed class MailStoreHealthCheck(IMailStore store) : Microsoft.Extensions.Diagnostics.HealthChecks.IHealthCheck
{
    public async Task<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult> CheckHealthAsync(
        Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await store.PingAsync(cancellationToken);
            return Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Unhealthy("the mail store does not answer", ex);
        }
    }
}
