using MailMesh.Admin;
using MailMesh.Delivery;
using MailMesh.Delivery.Dkim;
using MailMesh.Dns;
using MailMesh.Ingress;
using MailMesh.Ingress.Http;
using MailMesh.Mailbox;
using MailMesh.Policy;
using MailMesh.Queue;
using Microsoft.Extensions.Configuration.Memory;

namespace MailMesh.Standalone;

public static class StandaloneExtensions
{
    /// <summary>
    /// Defaults of the one-process mode. They sit below appsettings, environment variables and the command line,
    /// so `--Ingress:Listen=...` or `Ingress__Listen=...` still win. Paths are relative to the working directory.
    /// </summary>
    internal static readonly IReadOnlyDictionary<string, string?> Defaults = new Dictionary<string, string?>
    {
        ["Ingress:Listen"] = "127.0.0.1:2525",
        ["Urls"] = "http://127.0.0.1:8025",
        ["Storage:Provider"] = "sqlite",
        ["Storage:SqlitePath"] = "data/mailmesh.db",
        ["Storage:MigrateOnStart"] = "true",
        ["Ingress:Tls:SelfSigned"] = "true",
        ["Mailbox:Pop3Listen"] = "127.0.0.1:1110",
        ["Mailbox:ImapListen"] = "127.0.0.1:1143",
        ["Mailbox:Tls:SelfSigned"] = "true",

        // Clients on this machine may relay (the distributed services default to no relay networks at all).
        ["Policy:RelayNetworks"] = "127.0.0.0/8,::1/128",

        // The admin UI at /admin is served over plain HTTP on loopback by default: its cookie cannot require HTTPS.
        ["Admin:Ui:SecureCookie"] = "false",
    };

    /// <summary>Registers Policy, Queue, Dns, Delivery, Mailbox, Ingress and the admin UI in this one host, sharing one bus and one store.</summary>
    public static IHostApplicationBuilder AddStandalone(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = Defaults });

        // Order matters only for start-up: the consumers (Policy, Queue, Dns, Delivery) are registered before
        // the SMTP listener, so nothing is accepted before the services that check and queue it exist.
        builder.AddPolicy();
        builder.AddQueue();
        builder.AddDns();
        builder.AddDelivery();
        builder.AddMailbox();
        builder.AddIngress().AddIngressHttpApi();
        builder.AddAdminUi(sameProcess: true);
        builder.Services.AddHostedService<OrphanedLeaseRecovery>();
        return builder;
    }

    public static WebApplication MapStandaloneEndpoints(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapQueueEndpoints();
        app.MapQueueAdminEndpoints();
        app.MapPolicyEndpoints();
        app.MapPolicyAdminEndpoints();
        app.MapMailbox();
        app.MapIngressHttpApi();
        app.MapDkimAdminEndpoints();
        app.MapAdminUi();
        return app;
    }
}
