using MailMesh.Testing.Hosting;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// The distributed mode on one machine (<see cref="DistributedMesh"/>): the destination and the sender's domain each
/// with its own SMTP sink, and the five services as separate hosts, or Delivery as processes where a test kills one.
/// </summary>
internal static class Mesh
{
    public const string DestinationDomain = DistributedMesh.DestinationDomain;
    public const string SenderDomain = DistributedMesh.SenderDomain;

    public static Task<DistributedMesh> CreateAsync() => DistributedMesh.CreateAsync("mailmesh_e2e");
}
