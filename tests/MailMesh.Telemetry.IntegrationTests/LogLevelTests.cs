using System.Reflection;
using MailMesh.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>
/// Issue 7 §6: Queue logged every SQL command at Information (≈950,000 lines in minutes of load). Every service's
/// default logging keeps the libraries at Warning, MailMesh at Information, and MailMesh's per-message events at Debug.
/// </summary>
public sealed class LogLevelTests
{
    /// <summary>
    /// The only Information-level events MailMesh may log by default: start-up, configuration and periodic summaries
    /// (assembly name and event id). Anything per message, recipient, session or request is Debug; failures are
    /// Warning or above.
    /// </summary>
    private static readonly HashSet<string> InformationEvents =
    [
        "MailMesh.Ingress:1006", // session closed for shutdown (only while stopping)
        "MailMesh.ServiceDefaults:1030", // TLS certificate loaded (start-up, reload; Ingress and Mailbox)
        "MailMesh.Policy:2010", // suppression added through the admin API
        "MailMesh.Policy:2011", // suppression removed through the admin API
        "MailMesh.Policy:2120", // suppressions imported through the admin API (one line per import)
        "MailMesh.Queue:3000", // scheduler started
        "MailMesh.Queue:3046", // result applier started
        "MailMesh.Queue:3030", // periodic purge summary
        "MailMesh.Queue:3120", // admin action applied through the admin API (audited)
        "MailMesh.Delivery:5030", // DKIM key re-read after its file changed (configuration)
        "MailMesh.Dns:4003", // resolvers (start-up)
        "MailMesh.Standalone:9001", // orphaned leases returned (start-up)
        "MailMesh.Mailbox:6021", // accounts from configuration written to the mail store (start-up)
        "MailMesh.Mailbox:6031", // mailbox changed through the admin API
        "MailMesh.Storage:1", // PostgreSQL migration applied
        "MailMesh.Storage:2", // PostgreSQL schema version
        "MailMesh.Storage:4", // migration 0022: the received_at back-fill starts (once, at start-up)
        "MailMesh.Storage:5", // migration 0022: the received_at back-fill is done (once)
        "MailMesh.Storage:11", // SQLite migration applied
        "MailMesh.Storage:12", // SQLite schema version
        "MailMesh.Storage:4301", // suppression filter live: at start-up, after its listener came back, every 10 minutes' reload
    ];

    private static readonly string[] ServiceAssemblies =
    [
        "MailMesh.Ingress", "MailMesh.Policy", "MailMesh.Queue", "MailMesh.Dns", "MailMesh.Delivery",
        "MailMesh.Standalone", "MailMesh.Storage", "MailMesh.Smtp", "MailMesh.ServiceDefaults", "MailMesh.Contracts",
        "MailMesh.Mailbox",
    ];

    private static ILoggerFactory LoggerFactory(WebApplication app) => app.Services.GetRequiredService<ILoggerFactory>();

    [Fact]
    public async Task Libraries_log_warnings_and_MailMesh_information_by_default()
    {
        var builder = WebApplication.CreateBuilder([]);
        builder.AddServiceDefaults("mailmesh-test");
        await using var app = builder.Build();
        var factory = LoggerFactory(app);

        foreach (var category in new[] { "Npgsql.Command", "Npgsql.Connection", "MassTransit", "MassTransit.ReceiveTransport",
            "Microsoft.AspNetCore.Hosting.Diagnostics", "System.Net.Http.HttpClient.webhooks.LogicalHandler" })
        {
            var logger = factory.CreateLogger(category);
            Assert.False(logger.IsEnabled(LogLevel.Information), category + " logs Information by default");
            Assert.True(logger.IsEnabled(LogLevel.Warning), category + " does not log Warning by default");
        }

        foreach (var category in new[] { "MailMesh.Queue.QueueScheduler", "Microsoft.Hosting.Lifetime" })
        {
            var logger = factory.CreateLogger(category);
            Assert.True(logger.IsEnabled(LogLevel.Information), category + " does not log Information by default");
            Assert.False(logger.IsEnabled(LogLevel.Debug), category + " logs Debug by default");
        }
    }

    [Fact]
    public async Task Configuration_overrides_the_default_levels()
    {
        var builder = WebApplication.CreateBuilder(["--Logging:LogLevel:Npgsql=Debug", "--Logging:LogLevel:MailMesh=Debug"]);
        builder.AddServiceDefaults("mailmesh-test");
        await using var app = builder.Build();
        var factory = LoggerFactory(app);

        Assert.True(factory.CreateLogger("Npgsql.Command").IsEnabled(LogLevel.Debug));
        Assert.True(factory.CreateLogger("MailMesh.Queue.QueueScheduler").IsEnabled(LogLevel.Debug));
        Assert.False(factory.CreateLogger("MassTransit").IsEnabled(LogLevel.Information));
    }

    [Fact]
    public void Per_message_events_are_Debug()
    {
        var offenders = new List<string>();
        var seen = 0;
        foreach (var name in ServiceAssemblies)
        {
            var assembly = Assembly.Load(name);
            foreach (var type in assembly.GetTypes())
            {
                foreach (var method in type.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                {
                    if (method.GetCustomAttribute<LoggerMessageAttribute>() is not { } message)
                    {
                        continue;
                    }

                    seen++;
                    var key = name + ":" + message.EventId;
                    if (message.Level == LogLevel.Information && !InformationEvents.Contains(key))
                    {
                        offenders.Add($"{key} {type.Name}.{method.Name}: \"{message.Message}\"");
                    }
                }
            }
        }

        Assert.True(seen > 50, $"only {seen} [LoggerMessage] methods found: the scan is broken");
        Assert.True(offenders.Count == 0,
            "Information-level events that are not start-up, configuration or summaries (per-message events are Debug; " +
            "failures Warning or above; or add a start-up event to the list):\n" + string.Join('\n', offenders));
    }
}
