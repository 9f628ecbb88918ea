using System.Security.Cryptography;
using System.Text;
using MailMesh.Testing.Hosting;

namespace MailMesh.Telemetry.IntegrationTests;

/// <summary>
/// The distributed mode as production runs it, in one test process (<see cref="DistributedMesh"/>): each service its
/// own host with its own bus connection and HTTP endpoints (/metrics, /healthz, /readyz), Ingress with its HTTP
/// submission API open to <see cref="ApiKey"/>.
/// </summary>
internal static class TelemetryMesh
{
    public const string DestinationDomain = DistributedMesh.DestinationDomain;
    public const string SenderDomain = DistributedMesh.SenderDomain;
    public const string ApiKeyName = "telemetry-tests";
    public const string ApiKey = "mm_test_0123456789abcdef0123456789abcdef";

    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    public static async Task<DistributedMesh> CreateAsync()
    {
        var mesh = await DistributedMesh.CreateAsync("mailmesh_telemetry");
        mesh.Settings["Ingress:Api:Keys:0:Name"] = ApiKeyName;
        mesh.Settings["Ingress:Api:Keys:0:Hash"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ApiKey)));
        return mesh;
    }

    /// <summary>The service a test names in lower case ("ingress", "policy", "queue", "dns", "delivery").</summary>
    public static MeshService Service(string name) => Enum.Parse<MeshService>(name, ignoreCase: true);
}
