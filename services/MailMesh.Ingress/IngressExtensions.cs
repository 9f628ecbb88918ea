using MailMesh.Ingress.Acceptance;
using MailMesh.Ingress.Auth;
using MailMesh.Ingress.Tls;
using MailMesh.Policy;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Tls;
using MailMesh.Storage;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress;

public static class IngressExtensions
{
    /// <summary>
    /// Registers the Ingress service: the SMTP listeners on Kestrel (Ingress:Listen) next to the HTTP endpoints (Urls),
    /// Policy's inline checks (in process), the spool and its readiness check, metrics.
    /// </summary>
    public static IHostApplicationBuilder AddIngress(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddValidatedOptions<IngressOptions>();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IngressMetrics>();
        services.TryAddSingleton<Memory.MessageBufferBudget>();
        services.TryAddSingleton<IngressEndpoints>();
        services.TryAddSingleton<SmtpConnectionHandler>();
        services.TryAddSingleton<IngressPolicy>();
        services.TryAddSingleton<MessageAcceptor>();
        services.TryAddSingleton<ReceivedAnnouncer>();
        services.TryAddSingleton<SenderDomains>();
        services.AddValidatedOptions<IngressTlsOptions>();
        services.AddValidatedOptions<IngressAuthOptions>();
        services.TryAddSingleton(sp => new ServerCertificate(
            sp.GetRequiredService<IOptions<IngressTlsOptions>>().Value,
            sp.GetRequiredService<IOptions<IngressOptions>>().Value.HostName,
            IngressTlsOptions.SectionName,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<ServerCertificate>>()));
        services.TryAddSingleton<Authenticator>();

        // SMTP AUTH users made through the admin API (issue 12), re-read every Admin:KeyRefreshInterval.
        services.AddValidatedOptions<ServiceDefaults.Security.AdminApiOptions>();
        if (!services.Any(d => d.ServiceType == typeof(StoredSmtpUsers)))
        {
            services.AddSingleton<StoredSmtpUsers>();
            services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<StoredSmtpUsers>());
        }
        services.TryAddSingleton<ConnectionLimiter>();
        services.TryAddSingleton<IngressShutdown>();

        // Graceful stop: the host must wait for the drain (Ingress:ShutdownGracePeriod) and then for the bus and the
        // spool, or Kestrel would abort the sessions before their 250 or 421 went out.
        services.AddOptions<HostOptions>().PostConfigure<IOptions<IngressOptions>>((host, options) =>
        {
            var needed = options.Value.ShutdownGracePeriod + TimeSpan.FromSeconds(10);
            if (host.ShutdownTimeout < needed)
            {
                host.ShutdownTimeout = needed;
            }
        });

        // Policy's rules, evaluated here against Policy's tables: a decision costs no bus round trip (issue 8).
        builder.AddPolicyChecks();

        // Receive into a buffer at once instead of first waiting for data with a one-byte MSG_PEEK: Kestrel's default
        // spends a peek per 4 KiB read, doubling the receive system calls of a message body (issue 8; 4 KiB more held per
        // idle connection, 4 MiB at 1,000).
        services.Configure<SocketTransportOptions>(sockets => sockets.WaitForDataBeforeAllocatingBuffer = false);

        // Explicit Listen() calls make Kestrel ignore "Urls": the HTTP endpoints are added back, then the SMTP ones.
        builder.AddKestrelHttpEndpoints();
        services.AddOptions<KestrelServerOptions>()
            .Configure<IOptions<IngressOptions>, IngressEndpoints>((kestrel, options, endpoints) => KestrelListeners.AddSmtp(kestrel, options.Value, endpoints));

        // The spool (Storage:Provider) and its readiness check: Ingress commits every accepted message there.
        builder.AddMailMeshStorage(defaultMaxPoolSize: 10);
        services.AddHealthChecks().AddStoreCheck();
        return builder;
    }
}
