using MailMesh.ServiceDefaults;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Webhooks;

/// <summary>Registration of the Queue's message-event webhooks.</summary>
internal static class WebhookExtensions
{
    /// <summary>
    /// Binds and validates <see cref="WebhookOptions"/>; registers the consumer only when at least one endpoint is
    /// configured, so a Queue without webhooks has no webhook queue on the bus.
    /// </summary>
    internal static IHostApplicationBuilder AddWebhooks(this IHostApplicationBuilder builder)
    {
        builder.Services.AddWebhookServices();
        var endpoints = builder.Configuration.GetSection(WebhookOptions.SectionName).GetSection(nameof(WebhookOptions.Endpoints));
        if (endpoints.GetChildren().Any() && !builder.Services.Any(d => d.ServiceType == typeof(WebhookMarker)))
        {
            builder.Services.AddSingleton<WebhookMarker>();
            builder.AddBusPart(AddWebhookConsumer);
        }

        return builder;
    }

    /// <summary>Options and the HTTP client (tests compose these with the test harness).</summary>
    internal static IServiceCollection AddWebhookServices(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(IValidateOptions<WebhookOptions>)))
        {
            return services;
        }

        services.AddValidatedOptions<WebhookOptions>();

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
