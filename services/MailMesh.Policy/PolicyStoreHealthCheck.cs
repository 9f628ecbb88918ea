using MailMesh.Storage;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace MailMesh.Policy;

/// <summary>Readiness: the policy store answers (Policy must never accept unchecked).</summary>
internal sealed class PolicyStoreHealthCheck(IPolicyStore store) : IHealthCheck
{
    public const string Name = "policy-store";

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await store.ListSuppressionsAsync(1, cancellationToken);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy("policy store unreachable: " + ex.Message);
        }
    }
}
