using MailMesh.Testing.Dkim;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// ARC end to end in the distributed mode (real RabbitMQ and PostgreSQL; <see cref="ArcRelay"/>): Ingress asks Policy's
/// DKIM, ARC and DMARC checks at the end of DATA, Queue hands the message to Delivery, which seals it (Dkim:Arc, with its
/// own Dkim:Arc:AuthServId) on the way to dest.test's server; the copies there carry a valid ARC set by dkimpy, MimeKit
/// and mailauth, with cv= reflecting the chain the message arrived with.
/// </summary>
public sealed class ArcDistributedTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Relayed_mail_reaches_the_destination_with_a_valid_ARC_set_whose_cv_reflects_the_inbound_chain()
    {
        using var relay = new ArcRelay();
        await using var mesh = await Mesh.CreateAsync();
        foreach (var (key, value) in relay.Settings)
        {
            mesh.Settings[key] = value;
        }

        await mesh.StartAsync();
        await relay.SendAsync(mesh.Smtp.Port);
        var delivered = await mesh.Destination.WaitForMessagesAsync(3, Patience);
        await relay.VerifyAsync(delivered.Select(m => m.Data));
    }
}
