using MailMesh.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace MailMesh.ServiceDefaults;

public static class ServiceDefaultsExtensions
{
    /// <summary>Tag of the health checks that /readyz runs (dependencies reachable).</summary>
    public const string ReadyTag = "ready";

    /// <summary>
    /// OpenTelemetry traces, metrics and logs (OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, Prometheus always),
    /// the default log levels (<see cref="DefaultLogLevels"/>), health checks, and a TimeProvider. Call first in every service's Program.cs.
    /// </summary>
    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder, string serviceName)
        where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddHealthChecks();

        DefaultLogLevels.AddTo(builder.Configuration);
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        var otlp = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(
                serviceName: builder.Configuration["OTEL_SERVICE_NAME"] ?? serviceName,
                serviceNamespace: "mailmesh",
                serviceInstanceId: Environment.MachineName + "-" + Environment.ProcessId))
            .WithTracing(tracing =>
            {
                tracing
                    .AddSource(Telemetry.Prefix + ".*")
                    .AddSource("MassTransit")
                    .AddAspNetCoreInstrumentation(options =>
                        options.Filter = context => !IsProbe(context.Request.Path));
                if (otlp)
                {
                    // Npgsql's spans are leaves that only an exporter reads, and each one costs the statement's text
                    // (a batch's, joined) and its tags: 3.5 kB per mail in Delivery with nowhere to send them (issue 8).
                    // MailMesh's and MassTransit's spans stay without an exporter: they carry the trace ids that the
                    // logs and the stored trace_parent correlate by.
                    tracing.AddSource("Npgsql");
                }
            })
            .WithMetrics(metrics => metrics
                .AddMeter(Telemetry.Prefix + ".*")
                .AddMeter("MassTransit")
                .AddMeter("Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel")
                .AddPrometheusExporter());
        if (otlp)
        {
            telemetry.UseOtlpExporter();
        }

        return builder;
    }

    /// <summary>/healthz (the process is alive), /readyz (RabbitMQ and the store answer) and /metrics (Prometheus).</summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        app.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag) });
        app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }

    private static bool IsProbe(PathString path) =>
        path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz") || path.StartsWithSegments("/metrics");

    /// <summary>Registers a readiness check for the spool store.</summary>
    /// <remarks>Idempotent: Standalone registers several services that each ask for it.</remarks>
    public static IHealthChecksBuilder AddStoreCheck(this IHealthChecksBuilder checks)
    {
        ArgumentNullException.ThrowIfNull(checks);
        if (checks.Services.Any(d => d.ServiceType == typeof(StoreHealthCheck)))
        {
            return checks;
        }

        checks.Services.AddSingleton<StoreHealthCheck>();
        return checks.AddCheck<StoreHealthCheck>("store", tags: [ReadyTag]);
    }

    private sealed class StoreHealthCheck(ISpool spool) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                await spool.PingAsync(cancellationToken);
                return HealthCheckResult.Healthy();
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                return HealthCheckResult.Unhealthy("store unreachable: " + ex.Message);
            }
        }
    }
}
