using MailMesh.ServiceDefaults;
using MailMesh.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MailMesh.Queue.Tests;

public sealed class QueueRegistrationTests
{
    [Fact]
    public async Task AddQueue_registers_a_host_that_starts_and_stops_on_the_in_memory_bus()
    {
        var directory = Path.Combine(Path.GetTempPath(), "mailmesh-queue-tests", Guid.NewGuid().ToString("N"));
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Storage:Provider"] = "Sqlite",
            ["Storage:SqlitePath"] = Path.Combine(directory, "spool.db"),
            ["Storage:MigrateOnStart"] = "true",
            ["Queue:Hostname"] = "mx.mailmesh.test",
        });
        builder.Services.AddSingleton(TimeProvider.System);
        builder.AddQueue();
        builder.AddQueue(); // Standalone may reach it twice through shared registrations; harmless.
        builder.AddMailMeshBus(BusTransport.InMemory);

        using var host = builder.Build();
        await host.StartAsync();
        Assert.NotNull(host.Services.GetRequiredService<ISpool>());
        Assert.Equal(TimeSpan.FromDays(5), host.Services.GetRequiredService<IOptions<QueueOptions>>().Value.MaxAge);
        await host.StopAsync();
    }

    [Fact]
    public void Invalid_options_stop_the_host_with_the_key_named()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Storage:Provider"] = "Sqlite",
            ["Storage:SqlitePath"] = Path.Combine(Path.GetTempPath(), "mailmesh-queue-tests", Guid.NewGuid().ToString("N"), "spool.db"),
            ["Queue:MaxAge"] = "-00:00:01",
        });
        builder.Services.AddSingleton(TimeProvider.System);
        builder.AddQueue();
        builder.AddMailMeshBus(BusTransport.InMemory);
        using var host = builder.Build();

        var ex = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<QueueOptions>>().Value);
        Assert.Contains(ex.Failures, f => f.StartsWith("Queue:MaxAge: must be positive", StringComparison.Ordinal));
    }
}
