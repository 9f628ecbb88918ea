using MailMesh.Contracts;
using MailMesh.Delivery.Dkim;
using MailMesh.Delivery.Shaping;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Bounces;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

public static class DeliveryExtensions
{
    /// <summary>
    /// Registers the Delivery service: options, the spool, the TLS trust anchors, the connection pool, the SMTP agent, the
    /// <c>DeliverMessage</c> consumer and the <c>ResolveMx</c> request client.
    /// </summary>
    public static IHostApplicationBuilder AddDelivery(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddMailMeshStorage(defaultMaxPoolSize: 10);

        // Ready only while the spool answers: every attempt starts by reading the message from it.
        builder.Services.AddHealthChecks().AddStoreCheck();
        builder.Services.AddValidatedOptions<DeliveryOptions>();
        builder.Services.AddSingleton<DeliveryMetrics>();
        builder.Services.AddSingleton<TlsTrust>();
        builder.Services.AddSingleton<SmtpConnectionPool>();
        builder.Services.AddSingleton<SmtpDeliveryAgent>();
        builder.Services.AddSingleton<Pools.PoolSelector>();

        // Outbound TLS security (Delivery:Tls:Dane, :MtaSts, :Reporting): DANE, MTA-STS and TLS reports.
        builder.Services.AddSingleton<TlsPolicyDns>();
        builder.Services.AddSingleton<MtaStsResolver>();
        builder.Services.AddSingleton<TlsReportRecorder>();
        builder.Services.AddSingleton<TlsPolicyResolver>();
        builder.Services.AddHostedService<TlsReportService>();

        // Bounce classification (Delivery:BounceRules): the operator's files are checked by the options validation at start.
        builder.Services.AddBounceClassifier();
        builder.Services.AddValidatedOptions<ReturnPathOptions>();

        // DKIM signing (section "Dkim"): every key file is loaded by the validation at start.
        builder.Services.AddValidatedOptions<DkimOptions>();
        builder.Services.AddSingleton<DkimKeyRing>();
        builder.Services.AddSingleton<MessageSigner>();
        builder.AddAdminAuthentication();

        // ARC sealing (Dkim:Arc): the authserv-id defaults to the one Policy stamps, as far as this configuration has it.
        builder.Services.PostConfigure<DkimOptions>(options =>
        {
            if (string.IsNullOrWhiteSpace(options.Arc.AuthServId))
            {
                var configuration = builder.Configuration;
                options.Arc.AuthServId = NonEmpty(configuration["Policy:AuthServId"])
                    ?? NonEmpty(configuration["Policy:Spf:AuthServId"]) ?? NonEmpty(configuration["Ingress:HostName"]);
            }
        });
        builder.Services.AddSingleton<ArcSealer>();
        builder.Services.AddSingleton<MxCache>();

        // Traffic shaping (Delivery:Shaping, docs/delivery.md): sites, budgets shared through the store, automation.
        builder.Services.AddValidatedOptions<ShapingOptions>();
        builder.Services.AddSingleton(sp => new SiteResolver(sp.GetRequiredService<IOptions<ShapingOptions>>().Value.LoadRules()));
        builder.Services.AddSingleton(sp =>
        {
            var shaping = sp.GetRequiredService<IOptions<ShapingOptions>>();
            var shared = shaping.Value.Budget == ShapingBudgetMode.Local ? null : sp.GetRequiredService<ISiteActionStore>() as IShapingBudgetStore;
            return new ShapingBudget(shared, shaping, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<ShapingBudget>>());
        });
        builder.Services.AddSingleton<SiteActionCache>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SiteActionCache>());
        builder.Services.AddSingleton<Shaper>();
        builder.Services.AddSingleton(sp => new ContentBudget(sp.GetRequiredService<IOptions<DeliveryOptions>>().Value.MaxContentBytes));
        // Graceful stop: MassTransit cancels a consumer's token the moment the bus stops unless ConsumerStopTimeout is
        // set, which would cut SMTP transactions off mid-DATA. Let them finish within the grace period instead, and
        // make the bus and the host wait that long (PostConfigure: after ServiceDefaults' bus settings).
        builder.Services.AddOptions<MassTransitHostOptions>().PostConfigure<IOptions<DeliveryOptions>>((bus, options) =>
        {
            var grace = options.Value.ShutdownGracePeriod;
            bus.ConsumerStopTimeout = grace;
            if (bus.StopTimeout is not { } stop || stop < grace + TimeSpan.FromSeconds(5))
            {
                bus.StopTimeout = grace + TimeSpan.FromSeconds(5);
            }
        });
        builder.Services.AddOptions<HostOptions>().PostConfigure<IOptions<DeliveryOptions>>((host, options) =>
        {
            var needed = options.Value.ShutdownGracePeriod + TimeSpan.FromSeconds(10);
            if (host.ShutdownTimeout < needed)
            {
                host.ShutdownTimeout = needed;
            }
        });

        builder.Services.AddSingleton<DeliverySlots>();
        builder.AddBusPart(bus =>
        {
            bus.AddConsumer<DeliverMessageConsumer, DeliverMessageConsumerDefinition>();
            bus.AddRequestClient<ResolveMx>();
        });
        return builder;
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
}
