using MailMesh.ServiceDefaults;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Webhooks;

/// <summary>Registration of the Queue's message-event webhooks.</summary>
internal static class WebhookExtensions
{
    /// <summary>
    /// Binds and validates <see cref="WebhookOptions"/>; registers the consumer (unless Queue:Webhooks:Enabled is false:
    /// endpoints may be made through the admin API at any time) and the loop that reads the stored endpoints and prunes
    /// their history.
    /// </summary>
    internal static IHostApplicationBuilder AddWebhooks(this IHostApplicationBuilder builder)
    {
        builder.Services.AddWebhookServices();

        // Queue:Webhooks:Enabled false: no consumer, so no webhooks queue and no delivery of every event to it.
        if (!builder.Configuration.GetValue($"{WebhookOptions.SectionName}:{nameof(WebhookOptions.Enabled)}", true))
        {
            return builder;
        }

        if (!builder.Services.Any(d => d.ServiceType == typeof(WebhookMarker)))
        {
            builder.Services.AddSingleton<WebhookMarker>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<StoredWebhooks>());
            builder.AddBusPart(AddWebhookConsumer);
        }

        return builder;
    }

    /// <summary>Options, the HTTP client, the sender and the stored endpoints (tests compose these with the test harness).</summary>
    internal static IServiceCollection AddWebhookServices(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(IValidateOptions<WebhookOptions>)))
        {
            return services;
        }

        services.AddValidatedOptions<WebhookOptions>();
        services.AddSingleton<WebhookSender>();
        services.AddSingleton<StoredWebhooks>();

        // The consumer applies WebhookOptions.Timeout per request with its TimeProvider; HttpClient's own 100 s
        // default would otherwise cap a longer configured timeout.
        services.AddHttpClient(MessageEventWebhookConsumer.HttpClientName, client =>
        {
            client.Timeout = Timeout.InfiniteTimeSpan;
            client.DefaultRequestHeaders.UserAgent.ParseAdd("MailMesh-Webhooks/1.0");
        });
        return services;
    }

    internal static void AddWebhookConsumer(IBusRegistrationConfigurator bus) =>
        bus.AddConsumer<MessageEventWebhookConsumer, MessageEventWebhookConsumerDefinition>();

    private sealed class WebhookMarker;
}
