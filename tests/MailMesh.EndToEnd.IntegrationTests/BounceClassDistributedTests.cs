using MailKit.Net.Smtp;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using MimeKit;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// Bounce classification across the distributed services (real RabbitMQ and PostgreSQL, issue 11): Delivery classifies
/// the destination's scripted replies, the class reaches the spool through the result outbox, and Queue retries a
/// throttled recipient on its class's schedule (the global one is an hour), suppresses the unknown user and not the
/// spam-blocked one.
/// </summary>
public sealed class BounceClassDistributedTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Replies_are_classified_across_services_and_the_class_decides_retry_and_suppression()
    {
        await using var mesh = await Mesh.CreateAsync();
        mesh.Settings["Queue:FirstRetryDelay"] = "01:00:00";
        mesh.Settings["Queue:MaxRetryDelay"] = "01:00:00";
        mesh.Settings["Queue:Retry:Classes:Throttled:FirstRetryDelay"] = "00:00:01";
        mesh.Settings["Queue:Retry:Classes:Throttled:MaxRetryDelay"] = "00:00:01";
        mesh.Destination.RecipientReplies["gone@dest.test"] = "550 5.1.1 The email account that you tried to reach does not exist.";
        mesh.Destination.RecipientReplies["slow@dest.test"] = "421 4.7.0 [127.0.0.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.";
        mesh.Destination.RecipientReplies["blocked@dest.test"] = "550 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org";
        await mesh.StartAsync();

        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@" + Mesh.SenderDomain));
        foreach (var to in new[] { "gone", "slow", "blocked" })
        {
            message.To.Add(MailboxAddress.Parse($"{to}@{Mesh.DestinationDomain}"));
        }

        message.Subject = "classes";
        message.Body = new TextPart("plain") { Text = "bounce classes\r\n" };
        string reply;
        using (var client = new SmtpClient())
        {
            await client.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
            reply = await client.SendAsync(message);
            await client.DisconnectAsync(quit: true);
        }

        var id = Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
        var first = await mesh.WaitForStatusAsync(id, s => State(s, "slow") == RecipientState.Deferred && State(s, "gone") == RecipientState.Bounced && State(s, "blocked") == RecipientState.Bounced, Patience);
        Assert.Equal("Throttled", Recipient(first, "slow").LastBounceClass);
        Assert.Equal("InvalidRecipient", Recipient(first, "gone").LastBounceClass);
        Assert.Equal("SpamBlock", Recipient(first, "blocked").LastBounceClass);

        // The suppression is written just after the states are committed: wait for it, then the spam block has had its
        // chance too (both results were applied in the same batch).
        var policy = mesh.Host(MeshService.Policy).Services.GetRequiredService<IPolicyStore>();
        using (var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(100)))
        {
            var deadline = DateTimeOffset.UtcNow + Patience;
            while (await policy.GetSuppressionAsync("gone@dest.test", default) is null && DateTimeOffset.UtcNow < deadline)
            {
                await poll.WaitForNextTickAsync();
            }
        }

        Assert.NotNull(await policy.GetSuppressionAsync("gone@dest.test", default));
        Assert.Null(await policy.GetSuppressionAsync("blocked@dest.test", default));

        mesh.Destination.RecipientReplies.Clear();
        var delivered = await mesh.Destination.WaitForMessagesAsync(1, Patience);
        Assert.Equal(["slow@dest.test"], delivered.Single(m => m.Recipients.Contains("slow@dest.test")).Recipients);
        var final = await mesh.WaitForStatusAsync(id, s => State(s, "slow") == RecipientState.Delivered, Patience);
        var history = (await mesh.Spool.GetStatusAsync(id, default))!.Recipients.Single(r => r.Address == "slow@dest.test").History;
        Assert.Null(Recipient(final, "slow").LastBounceClass);
        Assert.All(history.SkipLast(1), h => Assert.Equal("Throttled", h.BounceClass));
    }

    private static RecipientStatus Recipient(MessageStatus status, string local) => status.Recipients.Single(r => r.Address == $"{local}@{Mesh.DestinationDomain}");

    private static RecipientState State(MessageStatus status, string local) => Recipient(status, local).State;
}
