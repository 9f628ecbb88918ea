using MailMesh.ServiceDefaults;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy.Tests;

public sealed class PolicyRegistrationTests
{
    [Fact]
    public async Task AddPolicy_registers_a_host_that_starts_and_stops_on_the_in_memory_bus()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Storage:Provider"] = "Sqlite",
            ["Storage:SqlitePath"] = PolicyTestHost.NewDatabasePath(),
            ["Storage:MigrateOnStart"] = "true",
        });
        builder.Services.AddSingleton(TimeProvider.System);
        builder.AddPolicy();
        builder.AddMailMeshBus(BusTransport.InMemory);

        using var host = builder.Build();
        await host.StartAsync();
        Assert.Equal(1000, host.Services.GetRequiredService<IOptions<PolicyOptions>>().Value.MaxRecipientsPerMessage);
        await host.StopAsync();
    }

    [Fact]
    public void Bad_relay_network_stops_the_host_with_the_key_named()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Storage:Provider"] = "Sqlite",
            ["Storage:SqlitePath"] = PolicyTestHost.NewDatabasePath(),
            ["Policy:RelayNetworks"] = "10.0.0.0/8,x",
        });
        builder.AddPolicy();
        using var host = builder.Build();

        var ex = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<PolicyOptions>>().Value);
        Assert.Contains("Policy:RelayNetworks: 'x' is not a CIDR (e.g. 10.0.0.0/8 or 2001:db8::/32)", ex.Failures);
    }
}
