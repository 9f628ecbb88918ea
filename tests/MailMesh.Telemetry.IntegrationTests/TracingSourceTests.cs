using System.Diagnostics;
using MailMesh.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>Which spans a service makes: Npgsql's only for an exporter (issue 8), MailMesh's and MassTransit's always.</summary>
public sealed class TracingSourceTests
{
    [Fact]
    public async Task Without_an_OTLP_endpoint_Npgsql_spans_are_not_made_and_MailMesh_and_MassTransit_spans_are()
    {
        await using var app = Build(otlpEndpoint: null);

        Assert.False(new ActivitySource("Npgsql").HasListeners(), "Npgsql's statements are traced with nowhere to send them");
        Assert.True(new ActivitySource("MassTransit").HasListeners());
        Assert.True(new ActivitySource(ServiceDefaults.Telemetry.Prefix + ".Ingress").HasListeners());
    }

    [Fact]
    public async Task With_an_OTLP_endpoint_Npgsql_spans_are_made()
    {
        await using var app = Build(otlpEndpoint: "http://127.0.0.1:4317");

        Assert.True(new ActivitySource("Npgsql").HasListeners());
    }

    private static WebApplication Build(string? otlpEndpoint)
    {
        var builder = WebApplication.CreateBuilder([]);
        builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlpEndpoint;
        builder.AddServiceDefaults("mailmesh-test");
        var app = builder.Build();
        _ = app.Services.GetRequiredService<TracerProvider>(); // the provider's listener exists once it is made
        return app;
    }
}
