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

    /// <summary>
    /// A mesh whose Mailbox replicas (when started) are final destination for <paramref name="domain"/>
    /// (Policy:MailboxDomains), call themselves <paramref name="hostName"/> and serve POP3/IMAP with a self-signed certificate.
    /// </summary>
    public static async Task<DistributedMesh> CreateWithMailboxDomainAsync(string domain, string hostName)
    {
        var mesh = await CreateAsync();
        mesh.Settings["Policy:MailboxDomains"] = domain;
        mesh.Settings["Mailbox:HostName"] = hostName;
        mesh.Settings["Mailbox:Tls:SelfSigned"] = "true";
        return mesh;
    }
}
