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

    [Fact]
    public void Policy_and_Ingress_in_one_process_register_the_rules_once()
    {
        // Standalone hosts the Policy service and Ingress, which asks the same rules in process: one engine, one
        // validation (a bad key is named once), one start-up warning about broad relay networks.
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Storage:Provider"] = "Sqlite",
            ["Storage:SqlitePath"] = PolicyTestHost.NewDatabasePath(),
            ["Policy:RelayNetworks"] = "x",
        });
        builder.AddPolicy();
        builder.AddPolicyChecks();
        Assert.Single(builder.Services, d => d.ServiceType == typeof(IPolicyChecks));
        Assert.Single(builder.Services, d => d.ImplementationType == typeof(RelayNetworkCheck));
        using var host = builder.Build();

        var ex = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<PolicyOptions>>().Value);
        Assert.Single(ex.Failures);
    }
}
