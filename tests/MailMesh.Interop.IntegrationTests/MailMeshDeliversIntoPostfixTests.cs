using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MailMesh.Delivery.Dkim;
using MailMesh.Storage;
using MailMesh.Testing.Dkim;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Postfix;
using MailMesh.Testing.Smtp;
using MimeKit;

namespace MailMesh.Interop.IntegrationTests;

/// <summary>
/// MailMesh delivers into Postfix: a private Postfix instance is the MX of dest.test (smtpd with STARTTLS, DSN,
/// 8BITMIME and SMTPUTF8) and relays what it accepts on to an SMTP sink, so the test sees the bytes after both MTAs.
/// A recipient Postfix rejects at RCPT (550 5.1.1) comes back to the sender as MailMesh's bounce DSN, delivered to the
/// sender domain's MX (a second sink on 127.0.0.2, same port as Postfix).
/// </summary>
public sealed partial class MailMeshDeliversIntoPostfixTests(MailMeshDeliversIntoPostfixTests.Fixture fixture)
    : IClassFixture<MailMeshDeliversIntoPostfixTests.Fixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task MailMesh_delivers_into_Postfix_over_STARTTLS_and_the_bytes_and_DSN_parameters_survive()
    {
        var marker = Marker();
        var message = NewMessage(marker, "8-bit through Postfix", "frank@dest.test");
        message.Body = new TextPart("plain")
        {
            Text = "caf\u00e9 \u00fcber \u2713\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
            ContentTransferEncoding = ContentEncoding.EightBit,
        };
        var sent = PostfixRelaysIntoMailMeshTests.Serialize(message);

        var id = await SendToMailMeshAsync(message, envelopeId: "env-" + marker[..8]);

        var arrived = await fixture.Onward.WaitForMessageAsync(marker, Patience);
        Assert.Equal("sender@origin.test", arrived.MailFrom);
        Assert.Equal(["frank@dest.test"], arrived.Recipients);
        Assert.True(arrived.Data.AsSpan().EndsWith(sent), "the message must arrive with the bytes that were sent:\n" + arrived.DataText);

        // Two trace headers above the content (RFC 5321 §4.4): Postfix's, showing MailMesh's Delivery used STARTTLS
        // (ESMTPS, RFC 3848), then MailMesh's Ingress's.
        var trace = PostfixRelaysIntoMailMeshTests.ReceivedHeaders(arrived);
        Assert.Equal(2, trace.Count);
        Assert.Matches(@"^Received: from client\.mailmesh\.test \(.*\[127\.0\.0\.1\]\) \(using TLS", trace[0]);
        Assert.Contains("by mx.dest.test (Postfix) with ESMTPS id", trace[0], StringComparison.Ordinal);
        Assert.Contains("by mailmesh.test (MailMesh) with ESMTP", trace[1], StringComparison.Ordinal);

        // The DSN parameters MailMesh passed to Postfix (RFC 3461 §4) travelled on with the message, and so did the
        // 8BITMIME body type (RFC 6152).
        var mail = fixture.Onward.Commands.Last(c => c.Contains(" MAIL FROM:<sender@origin.test>", StringComparison.OrdinalIgnoreCase) && c.Contains("ENVID=env-" + marker[..8], StringComparison.Ordinal));
        Assert.Contains("BODY=8BITMIME", mail, StringComparison.Ordinal);
        Assert.Contains("RET=HDRS", mail, StringComparison.Ordinal);
        var rcpt = fixture.Onward.Commands.Last(c => c.Contains(" RCPT TO:<frank@dest.test>", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(" NOTIFY=SUCCESS,FAILURE", rcpt, StringComparison.Ordinal);
        Assert.Contains(" ORCPT=rfc822;frank@dest.test", rcpt, StringComparison.Ordinal);

        await fixture.MailMesh.WaitForStateAsync(id, RecipientState.Delivered, Patience);
        await fixture.Postfix.WaitForEmptyQueueAsync(Patience);
    }

    [Fact]
    public async Task An_SMTPUTF8_message_is_delivered_into_Postfix_and_relayed_on()
    {
        var marker = Marker();
        var message = NewMessage(marker, "Gr\u00fc\u00dfe \u2709", "j\u00f6rg@dest.test");
        message.Body = new TextPart("plain") { Text = "internationalized\r\n", ContentTransferEncoding = ContentEncoding.EightBit };

        var id = await SendToMailMeshAsync(message);

        var arrived = await fixture.Onward.WaitForMessageAsync(marker, Patience);
        Assert.Equal(["j\u00f6rg@dest.test"], arrived.Recipients);
        // RFC 6531 §3.4: the UTF-8 envelope needs SMTPUTF8 on every hop; Postfix only relays it on with the parameter.
        Assert.Contains(fixture.Onward.Commands, c => c.Contains("MAIL FROM:<sender@origin.test>", StringComparison.Ordinal) && c.Contains("SMTPUTF8", StringComparison.Ordinal));
        Assert.Contains("with UTF8SMTPS id", PostfixRelaysIntoMailMeshTests.ReceivedHeaders(arrived)[0], StringComparison.Ordinal);

        await fixture.MailMesh.WaitForStateAsync(id, RecipientState.Delivered, Patience);
        await fixture.Postfix.WaitForEmptyQueueAsync(Patience);
    }

    [Fact]
    public async Task A_recipient_Postfix_rejects_with_550_5_1_1_returns_to_the_sender_as_a_DSN()
    {
        var marker = Marker();
        var message = NewMessage(marker, "one good, one unknown", "grace@dest.test", Fixture.Unknown);

        var id = await SendToMailMeshAsync(message);

        // The good recipient goes through Postfix...
        var arrived = await fixture.Onward.WaitForMessageAsync(marker, Patience);
        Assert.Equal(["grace@dest.test"], arrived.Recipients);

        // ...the rejected one is bounced by MailMesh to the sender's MX (RFC 3464 report, null reverse path).
        var dsn = await fixture.SenderMailbox.WaitForMessageAsync(marker, Patience);
        Assert.Equal(string.Empty, dsn.MailFrom); // RFC 5321 §4.5.5, RFC 3461 §6.2
        Assert.Equal(["sender@origin.test"], dsn.Recipients);
        var report = MimeMessage.Load(new MemoryStream(dsn.Data));
        var multipart = Assert.IsType<MultipartReport>(report.Body);
        Assert.Equal("delivery-status", multipart.ReportType);
        var status = Assert.Single(multipart.OfType<MessageDeliveryStatus>());
        // The first group is per message (RFC 3464 §2.2), the others per recipient (§2.3).
        var recipient = Assert.Single(status.StatusGroups.Skip(1), g => g.Count > 0);
        Assert.Equal("rfc822;" + Fixture.Unknown, recipient["Final-Recipient"]?.Replace(" ", string.Empty, StringComparison.Ordinal));
        Assert.Equal("failed", recipient["Action"]);
        Assert.Equal("5.1.1", recipient["Status"]);
        Assert.Contains("550", recipient["Diagnostic-Code"], StringComparison.Ordinal);
        Assert.Contains("5.1.1 <" + Fixture.Unknown + ">: Recipient address rejected: User unknown", recipient["Diagnostic-Code"]?.ReplaceLineEndings(string.Empty).Replace("  ", " ", StringComparison.Ordinal), StringComparison.Ordinal);

        // Postfix's own account of the rejection, to MailMesh's client ("NOQUEUE" or, when an earlier recipient of the
        // transaction was accepted, the queue id).
        await fixture.Postfix.WaitForLogLineAsync(
            new Regex(@"(NOQUEUE|[0-9A-F]+): reject: RCPT from .*\[127\.0\.0\.1\]: 550 5\.1\.1 <" + Regex.Escape(Fixture.Unknown) + ">"), Patience);

        await WaitForAsync(async () => (await fixture.MailMesh.Spool.GetStatusAsync(id, CancellationToken.None))!
            .Recipients.Single(r => r.Address == Fixture.Unknown).State == RecipientState.Bounced);
        await fixture.Postfix.WaitForEmptyQueueAsync(Patience);
    }

    [Fact]
    public async Task A_DKIM_signature_made_by_MailMesh_survives_delivery_through_Postfix()
    {
        var marker = Marker();
        var message = NewMessage(marker, "signed through Postfix", "frank@dest.test");
        message.Body = new TextPart("plain") { Text = "signed  text\t \r\n.leading dot\r\n\r\n\r\n" };

        await SendToMailMeshAsync(message);

        // Postfix added its Received field above MailMesh's DKIM-Signature and passed the rest on unchanged.
        var arrived = await fixture.Onward.WaitForMessageAsync(marker, Patience);
        Assert.StartsWith("Received: ", arrived.DataText, StringComparison.Ordinal);
        Assert.Contains("\r\nDKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=origin.test; s=interop;", arrived.DataText, StringComparison.Ordinal);
        var dkimpy = await DkimVerifiers.DkimpyAsync(arrived.Data, fixture.Dns);
        Assert.True(dkimpy.Pass, dkimpy.Output);
        var opendkim = await DkimVerifiers.OpenDkimAsync(arrived.Data, fixture.DkimRecords);
        Assert.True(opendkim.Pass, opendkim.Output);
        Assert.True(await DkimVerifiers.MimeKitAsync(arrived.Data, fixture.DkimRecords));
    }

    private static string Marker() => $"{Guid.NewGuid():N}@interop.test";

    private static MimeMessage NewMessage(string marker, string subject, params string[] to)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@origin.test"));
        foreach (var address in to)
        {
            message.To.Add(new MailboxAddress(null, address));
        }

        message.Subject = subject;
        message.MessageId = marker;
        message.Date = new DateTimeOffset(2026, 3, 2, 10, 0, 0, TimeSpan.Zero);
        message.Body = new TextPart("plain") { Text = "through Postfix\r\n" };
        return message;
    }

    /// <summary>Submits to MailMesh in clear text; returns the spool id from "250 2.0.0 Ok: queued as ID".</summary>
    private async Task<Guid> SendToMailMeshAsync(MimeMessage message, string? envelopeId = null)
    {
        using var client = new DsnSmtpClient(envelopeId);
        await client.ConnectAsync(fixture.MailMesh.Smtp.Address.ToString(), fixture.MailMesh.Smtp.Port, SecureSocketOptions.None);
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(quit: true);
        return Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTimeOffset.UtcNow + Patience;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        while (!await condition())
        {
            Assert.True(DateTimeOffset.UtcNow < deadline, "condition not met in time");
            await poll.WaitForNextTickAsync();
        }
    }

    /// <summary>MailKit asking for DSNs (RFC 3461): ENVID and RET=HDRS when an envelope id is given, NOTIFY per recipient.</summary>
    private sealed class DsnSmtpClient : SmtpClient
    {
        private readonly string? _envelopeId;

        public DsnSmtpClient(string? envelopeId)
        {
            _envelopeId = envelopeId;
            if (envelopeId is not null)
            {
                DeliveryStatusNotificationType = DeliveryStatusNotificationType.HeadersOnly;
            }
        }

        protected override string? GetEnvelopeId(MimeMessage message) => _envelopeId;

        protected override DeliveryStatusNotification? GetDeliveryStatusNotifications(MimeMessage message, MailboxAddress mailbox) =>
            _envelopeId is null ? null : DeliveryStatusNotification.Success | DeliveryStatusNotification.Failure;
    }

    /// <summary>
    /// dest.test's MX is Postfix on 127.0.0.1:P (smtpd with STARTTLS, a self-signed certificate, and a recipient
    /// access map rejecting <see cref="Unknown"/>), relaying everything on to <see cref="Onward"/>; origin.test's MX is
    /// <see cref="SenderMailbox"/> on 127.0.0.2:P. MailMesh delivers to port P.
    /// </summary>
    public sealed class Fixture : IAsyncLifetime
    {
        public const string Unknown = "nobody@dest.test";

        public TestDnsServer Dns { get; private set; } = null!;
        public SmtpSink Onward { get; private set; } = null!;
        public SmtpSink SenderMailbox { get; private set; } = null!;
        internal StandaloneMailMesh MailMesh { get; private set; } = null!;
        public PostfixInstance Postfix { get; private set; } = null!;
        public Dictionary<string, string> DkimRecords { get; } = [];
        private string KeyFile { get; set; } = string.Empty;

        public async Task InitializeAsync()
        {
            Dns = TestDnsServer.Start();
            Dns.AddMx("dest.test", 10, "mx.dest.test").AddAddress("mx.dest.test", "127.0.0.1");
            Dns.AddMx("origin.test", 10, "mx.origin.test").AddAddress("mx.origin.test", "127.0.0.2");
            Onward = SmtpSink.Start();
            Onward.HostName = "final.dest.test";
            Onward.Extensions.AddRange(["DSN", "SMTPUTF8"]);
            SenderMailbox = SmtpSink.Start(IPAddress.Parse("127.0.0.2"));

            using var certificate = TestCertificates.SelfSigned("mx.dest.test");
            var options = new PostfixInstanceOptions { HostName = "mx.dest.test", Port = SenderMailbox.Port, Certificate = certificate };
            options.Maps["recipient_access"] = $"{Unknown} 550 5.1.1 User unknown\n";
            options.Settings["smtpd_recipient_restrictions"] = "check_recipient_access hash:$config_directory/recipient_access";
            options.Settings["relayhost"] = $"[127.0.0.1]:{Onward.Port}";
            // 8BITMIME, DSN and SMTPUTF8 are announced by default; nothing is discarded from EHLO.
            options.Settings["smtpd_discard_ehlo_keywords"] = string.Empty;
            Postfix = await PostfixInstance.StartAsync(options);

            // DKIM: origin.test's mail is signed by Delivery (RSA, so opendkim can check it too); its key in the DNS.
            KeyFile = Path.Combine(Path.GetTempPath(), $"mailmesh-interop-dkim-{Guid.NewGuid():N}.pem");
            using (var key = DkimPrivateKey.Generate(DkimAlgorithm.RsaSha256))
            {
                await File.WriteAllTextAsync(KeyFile, key.ToPem());
                DkimRecords["interop._domainkey.origin.test"] = key.RecordText();
                Dns.AddTxt("interop._domainkey.origin.test", key.RecordText());
            }

            MailMesh = await StandaloneMailMesh.StartAsync(Dns, Postfix.Port, new Dictionary<string, string>
            {
                ["Dkim:Keys:0:Domain"] = "origin.test",
                ["Dkim:Keys:0:Selector"] = "interop",
                ["Dkim:Keys:0:KeyPath"] = KeyFile,
            });
        }

        public async Task DisposeAsync()
        {
            if (MailMesh is not null)
            {
                await MailMesh.DisposeAsync();
            }

            if (Postfix is not null)
            {
                await Postfix.DisposeAsync();
            }

            foreach (var sink in new[] { Onward, SenderMailbox })
            {
                if (sink is not null)
                {
                    await sink.DisposeAsync();
                }
            }

            Dns?.Dispose();
            File.Delete(KeyFile);
        }
    }
}
