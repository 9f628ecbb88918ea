using Microsoft.Extensions.Options;

namespace MailMesh.Policy;

/// <summary>
/// Warns at start about relay networks that trust more than one site (<see cref="RelayRules.BroadNetworks"/>): an open
/// relay is one misconfigured CIDR away, so the operator sees it in the first lines of the log.
/// </summary>
internal sealed class RelayNetworkCheck(IOptions<PolicyOptions> options, ILogger<RelayNetworkCheck> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var network in RelayRules.BroadNetworks(options.Value))
        {
            logger.BroadRelayNetwork(network);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
