using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

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

    /// <summary>
    /// <see cref="CreateWithMailboxDomainAsync"/>, then the test's settings (<paramref name="configure"/>: accounts, checks),
    /// then one replica of each service started in dependency order, the Mailbox service before Ingress.
    /// </summary>
    public static async Task<DistributedMesh> StartWithMailboxDomainAsync(string domain, string hostName, Action<Dictionary<string, string>> configure)
    {
        var mesh = await CreateWithMailboxDomainAsync(domain, hostName);
        try
        {
            configure(mesh.Settings);
            foreach (var service in new[] { MeshService.Queue, MeshService.Policy, MeshService.Dns, MeshService.Delivery, MeshService.Mailbox, MeshService.Ingress })
            {
                await mesh.StartAsync(service);
            }

            return mesh;
        }
        catch
        {
            await mesh.DisposeAsync();
            throw;
        }
    }

    /// <summary>The only message in <paramref name="address"/>'s <paramref name="folderName"/>, read through the Mailbox
    /// service's store (its size as the store lists it).</summary>
    public static async Task<byte[]> ReadOnlyMessageAsync(DistributedMesh mesh, string address, string folderName)
    {
        var store = mesh.Host(MeshService.Mailbox).Services.GetRequiredService<IMailStore>();
        var account = await store.GetAccountAsync(address, CancellationToken.None);
        var folder = await store.GetFolderAsync(account!.Id, folderName, CancellationToken.None);
        var message = Assert.Single(await store.ListMessagesAsync(account.Id, folder!.Id, 1, 10, CancellationToken.None));
        await using var stream = await store.OpenMessageAsync(account.Id, folder.Id, message.Uid, CancellationToken.None);
        using var copy = new MemoryStream();
        await stream!.CopyToAsync(copy);
        Assert.Equal(message.Size, copy.Length);
        return copy.ToArray();
    }
}
