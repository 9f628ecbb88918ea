using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace MailMesh.ServiceDefaults;

public enum BusTransport
{
    /// <summary>RabbitMQ at ConnectionStrings:RabbitMq, quorum queues, publisher confirms (distributed mode).</summary>
    RabbitMq,

    /// <summary>MassTransit's in-memory transport (Standalone: every service in one process).</summary>
    InMemory,
}

/// <summary>
/// Each service contributes its consumers and request clients with <see cref="AddBusPart"/>; the host then calls
/// <see cref="AddMailMeshBus"/> once, so Standalone can put all five services on one bus.
/// </summary>
public static class BusExtensions
{
    private const string PartsKey = "MailMesh.BusParts";

    public static void AddBusPart(this IHostApplicationBuilder builder, Action<IBusRegistrationConfigurator> part)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (!builder.Properties.TryGetValue(PartsKey, out var value) || value is not List<Action<IBusRegistrationConfigurator>> parts)
        {
            parts = [];
            builder.Properties[PartsKey] = parts;
        }

        parts.Add(part);
    }

    public static IHostApplicationBuilder AddMailMeshBus(this IHostApplicationBuilder builder, BusTransport transport = BusTransport.RabbitMq)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var parts = builder.Properties.TryGetValue(PartsKey, out var value) && value is List<Action<IBusRegistrationConfigurator>> list
            ? list
            : [];

        Uri? rabbit = null;
        if (transport == BusTransport.RabbitMq)
        {
            var connectionString = builder.Configuration.GetConnectionString("RabbitMq");
            if (string.IsNullOrWhiteSpace(connectionString))
            {
                throw new ConfigurationKeyException("ConnectionStrings:RabbitMq", "is required (an amqp:// URI) in the distributed mode");
            }

            if (!Uri.TryCreate(connectionString, UriKind.Absolute, out rabbit) || rabbit.Scheme is not ("amqp" or "amqps"))
            {
                throw new ConfigurationKeyException("ConnectionStrings:RabbitMq", $"'{connectionString}' is not an amqp:// or amqps:// URI");
            }
        }

        builder.Services.AddMassTransit(bus =>
        {
            bus.SetKebabCaseEndpointNameFormatter();
            foreach (var part in parts)
            {
                part(bus);
            }

            if (rabbit is not null)
            {
                bus.AddConfigureEndpointsCallback((_, endpoint) =>
                {
                    if (endpoint is IRabbitMqReceiveEndpointConfigurator rabbitEndpoint)
                    {
                        // Quorum queues survive a broker node loss; the spool is still the truth.
                        rabbitEndpoint.SetQuorumQueue();
                    }
                });
                bus.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(rabbit, host =>
                    {
                        host.PublisherConfirmation = true;
                        host.ConnectionName(builder.Environment.ApplicationName);
                    });
                    cfg.ConfigureEndpoints(context);
                });
            }
            else
            {
                bus.UsingInMemory((context, cfg) => cfg.ConfigureEndpoints(context));
            }
        });

        builder.Services.Configure<MassTransitHostOptions>(options =>
        {
            // A service is not started (and Ingress does not listen) until its bus is connected and its endpoints
            // are bound: nothing is accepted that could not be checked or announced.
            options.WaitUntilStarted = true;
            options.StartTimeout = TimeSpan.FromMinutes(2);
            options.StopTimeout = TimeSpan.FromSeconds(30);
        });

        return builder;
    }
}
