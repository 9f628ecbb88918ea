using System.Text;
using MailKit.Net.Smtp;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using MimeKit;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// A client hands a message to MailMesh over SMTP; MailMesh finds the recipient domain's MX in DNS and transfers the
/// message there, through Ingress, Policy, Queue, Dns and Delivery over real RabbitMQ and PostgreSQL.
/// </summary>
public sealed class DistributedPipelineTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Delivers_the_bytes_that_were_sent_plus_only_the_trace_header()
    {
        await using var mesh = await Mesh.CreateAsync();
        await mesh.StartAsync();

        var message = NewMessage("first", "alice@" + Mesh.DestinationDomain, "bob@" + Mesh.DestinationDomain);
        message.Body = new TextPart("plain") { Text = "Hello.\r\n.leading dot survives dot-stuffing\r\n..two dots\r\nbye\r\n" };
        var sent = Serialize(message);
        var reply = await SendAsync(mesh, message);
        var id = QueuedId(reply);

        var delivered = (await mesh.Destination.WaitForMessagesAsync(1, Patience)).Single();
        Assert.Equal(["alice@dest.test", "bob@dest.test"], delivered.Recipients.Order());
        Assert.Equal("sender@origin.test", delivered.MailFrom);

        // What arrived is what was sent, preceded by exactly one header MailMesh adds: Received (RFC 5321 §4.4).
        var arrived = delivered.Data;
        Assert.True(arrived.AsSpan().EndsWith(sent), "the delivered message must end with the bytes that were sent");
        var added = Encoding.ASCII.GetString(arrived, 0, arrived.Length - sent.Length);
        Assert.StartsWith("Received: from ", added, StringComparison.Ordinal);
        Assert.Contains(id.ToString(), added, StringComparison.OrdinalIgnoreCase);
        Assert.All(added.Split("\r\n", StringSplitOptions.RemoveEmptyEntries)[1..], line => Assert.True(line[0] is ' ' or '\t', $"unexpected added line: {line}"));

        var status = await WaitForStateAsync(mesh, id, RecipientState.Delivered);
        Assert.All(status.Recipients, r => Assert.Equal(1, r.Attempts));
    }

    [Fact]
    public async Task A_deferred_recipient_is_retried_and_then_delivered()
    {
        await using var mesh = await Mesh.CreateAsync();
        mesh.Destination.RecipientReplies["later@dest.test"] = "450 4.2.1 Mailbox busy, try later";
        await mesh.StartAsync();

        var id = QueuedId(await SendAsync(mesh, NewMessage("retry", "later@" + Mesh.DestinationDomain)));

        var first = await WaitForAsync(mesh, id, s => s.Recipients[0] is { State: RecipientState.Deferred });
        Assert.Equal(450, first.Recipients[0].LastReplyCode);
        Assert.Empty(mesh.Destination.Messages);

        mesh.Destination.RecipientReplies.Clear();
        var delivered = await mesh.Destination.WaitForMessagesAsync(1, Patience);
        Assert.Equal(["later@dest.test"], delivered.Single().Recipients);
        var status = await WaitForStateAsync(mesh, id, RecipientState.Delivered);
        Assert.Equal(2, status.Recipients[0].Attempts);
    }

    [Fact]
    public async Task A_permanent_failure_returns_a_DSN_to_the_sender()
    {
        await using var mesh = await Mesh.CreateAsync();
        mesh.Destination.RecipientReplies["nobody@dest.test"] = "550 5.1.1 No such user here";
        await mesh.StartAsync();

        var id = QueuedId(await SendAsync(mesh, NewMessage("bounce", "nobody@" + Mesh.DestinationDomain)));

        var dsn = (await mesh.SenderMailbox.WaitForMessagesAsync(1, Patience)).Single();
        Assert.Equal(string.Empty, dsn.MailFrom); // RFC 3461 §6.2: a DSN has the null reverse path
        Assert.Equal(["sender@origin.test"], dsn.Recipients);

        var report = MimeMessage.Load(new MemoryStream(dsn.Data));
        var multipart = Assert.IsType<MultipartReport>(report.Body);
        Assert.Equal("delivery-status", multipart.ReportType);
        var status = Assert.Single(multipart.OfType<MessageDeliveryStatus>());
        var recipient = status.StatusGroups[1];
        Assert.Equal("rfc822;nobody@dest.test", recipient["Final-Recipient"]?.Replace(" ", string.Empty, StringComparison.Ordinal));
        Assert.Equal("failed", recipient["Action"]);
        Assert.Equal("5.1.1", recipient["Status"]);
        Assert.Contains("550", recipient["Diagnostic-Code"], StringComparison.Ordinal);

        await WaitForStateAsync(mesh, id, RecipientState.Bounced);
    }

    [Fact]
    public async Task Killing_a_Delivery_process_mid_run_loses_nothing()
    {
        await using var mesh = await Mesh.CreateAsync();
        mesh.Settings["Queue:LeaseDuration"] = "00:00:05";
        mesh.Destination.DataReplyDelay = TimeSpan.FromMilliseconds(100);
        await mesh.StartAsync(deliveryHosts: 0, deliveryProcesses: 2);
        var victim = await mesh.StartProcessAsync(MeshService.Delivery);

        const int count = 40;
        var ids = new List<Guid>();
        using (var client = await ConnectAsync(mesh))
        {
            for (var i = 0; i < count; i++)
            {
                ids.Add(QueuedId(await client.SendAsync(NewMessage($"kill {i}", $"user{i}@{Mesh.DestinationDomain}"))));
            }

            await client.DisconnectAsync(quit: true);
        }

        // Kill one of the three Delivery processes while work is in flight: no goodbye, no ack.
        await mesh.Destination.WaitForMessagesAsync(5, Patience);
        await victim.KillAsync();

        foreach (var id in ids)
        {
            await WaitForStateAsync(mesh, id, RecipientState.Delivered);
        }

        var subjects = mesh.Destination.Messages
            .Select(m => MimeMessage.Load(new MemoryStream(m.Data)).Subject)
            .ToHashSet();
        for (var i = 0; i < count; i++)
        {
            Assert.Contains($"kill {i}", subjects);
        }
    }

    internal static MimeMessage NewMessage(string subject, params string[] to)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@" + Mesh.SenderDomain));
        foreach (var address in to)
        {
            message.To.Add(MailboxAddress.Parse(address));
        }

        message.Subject = subject;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId("origin.test");
        message.Body = new TextPart("plain") { Text = "end to end\r\n" };
        return message;
    }

    private static byte[] Serialize(MimeMessage message)
    {
        using var stream = new MemoryStream();
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        message.WriteTo(options, stream);
        return stream.ToArray();
    }

    private static async Task<SmtpClient> ConnectAsync(DistributedMesh mesh)
    {
        var client = new SmtpClient();
        await client.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        return client;
    }

    internal static async Task<string> SendAsync(DistributedMesh mesh, MimeMessage message)
    {
        using var client = await ConnectAsync(mesh);
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(quit: true);
        return reply;
    }

    /// <summary>"2.0.0 Ok: queued as 0193...": the spool id MailMesh gave the message.</summary>
    internal static Guid QueuedId(string reply) => Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);

    private static Task<MessageStatus> WaitForStateAsync(DistributedMesh mesh, Guid id, RecipientState state) =>
        WaitForAsync(mesh, id, s => s.Recipients.All(r => r.State == state));

    /// <summary>Polls the spool (the truth) until the condition holds; fails after the patience runs out.</summary>
    private static Task<MessageStatus> WaitForAsync(DistributedMesh mesh, Guid id, Func<MessageStatus, bool> condition) =>
        mesh.WaitForStatusAsync(id, condition, Patience);
}
