using MailKit.Net.Smtp;
using MailMesh.Storage;
using MailMesh.Testing.Hosting;
using MailMesh.Testing.Https;
using MailMesh.Testing.Smtp;
using MimeKit;
using Npgsql;

namespace MailMesh.EndToEnd.IntegrationTests;

/// <summary>
/// Outbound TLS security across the distributed services (real RabbitMQ and PostgreSQL): MTA-STS enforce for dest.test
/// fetched from a local HTTPS policy server; a message to a recipient of dest.test is delivered over verified TLS while
/// the destination's certificate is trusted, and waits (deferred 4.7.5, never sent in clear text) once it presents a
/// certificate nobody trusts; both sessions end up counted in the shared TLS-RPT aggregate in PostgreSQL.
/// </summary>
public sealed class TlsSecurityDistributedTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task MTA_STS_enforce_delivers_over_verified_TLS_defers_an_untrusted_server_and_reports_both()
    {
        using var ca = TestCertificates.CreateAuthority();
        var bundle = Path.Combine(Path.GetTempPath(), $"mailmesh-e2e-sts-{Guid.NewGuid():N}.pem");
        ca.WritePem(bundle);
        await using var https = await MtaStsPolicyServer.StartAsync(ca.IssueServer("mta-sts." + Mesh.DestinationDomain));
        https.SetPolicy(Mesh.DestinationDomain, "enforce", ["mx." + Mesh.DestinationDomain]);
        await using var mesh = await Mesh.CreateAsync();
        mesh.Dns.AddTxt("_mta-sts." + Mesh.DestinationDomain, "v=STSv1; id=1;");
        mesh.Settings["Delivery:Tls:TrustedCertificatesPath"] = bundle;
        mesh.Settings["Delivery:Tls:DnsServers"] = mesh.Dns.EndPoint.ToString();
        mesh.Settings["Delivery:Tls:MtaSts:Enabled"] = "true";
        mesh.Settings["Delivery:Tls:MtaSts:ExtraTrustedRootsPath"] = bundle;
        mesh.Settings["Delivery:Tls:MtaSts:TestOnlyPolicyEndpoint"] = https.Endpoint;
        mesh.Settings["Delivery:Tls:Reporting:Enabled"] = "true";
        mesh.Settings["Delivery:Tls:Reporting:FlushInterval"] = "00:00:01";

        // Every message on a new session: a pooled, already verified connection would otherwise carry the second one.
        mesh.Settings["Delivery:MaxMessagesPerConnection"] = "1";
        mesh.Destination.Tls = ca.IssueServer("mx." + Mesh.DestinationDomain);
        await mesh.StartAsync();

        var delivered = await SendAsync(mesh, "good");
        await mesh.WaitForStatusAsync(delivered, s => s.Recipients.All(r => r.State == RecipientState.Delivered), Patience);
        Assert.True(Assert.Single(await mesh.Destination.WaitForMessagesAsync(1, Patience)).Tls);

        mesh.Destination.Tls = TestCertificates.SelfSigned("mx." + Mesh.DestinationDomain);
        var waiting = await SendAsync(mesh, "bad");
        var status = await mesh.WaitForStatusAsync(waiting, s => s.Recipients.All(r => r.State == RecipientState.Deferred), Patience);
        Assert.Equal("TlsFailure", Assert.Single(status.Recipients).LastBounceClass);
        Assert.Single(mesh.Destination.Messages);

        // The shared aggregate: one success and one certificate-not-trusted failure for dest.test's sts policy.
        await using var connection = new NpgsqlConnection(mesh.Database.ConnectionString);
        await connection.OpenAsync();
        var deadline = DateTimeOffset.UtcNow + Patience;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        Dictionary<string, long> rows;
        do
        {
            await poll.WaitForNextTickAsync();
            rows = [];
            await using var command = new NpgsqlCommand(
                "SELECT result_type, sum(count)::bigint FROM spool.tls_report_counts WHERE policy_domain = @d AND policy_type = 'sts' GROUP BY result_type",
                connection);
            command.Parameters.AddWithValue("d", Mesh.DestinationDomain);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows[reader.GetString(0)] = reader.GetInt64(1);
            }
        }
        while (!(rows.GetValueOrDefault(string.Empty) >= 1 && rows.GetValueOrDefault("certificate-not-trusted") >= 1) && DateTimeOffset.UtcNow < deadline);

        Assert.Equal(1, rows.GetValueOrDefault(string.Empty));
        Assert.True(rows.GetValueOrDefault("certificate-not-trusted") >= 1, string.Join(", ", rows));
        File.Delete(bundle);
    }

    private static async Task<Guid> SendAsync(DistributedMesh mesh, string local)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@" + Mesh.SenderDomain));
        message.To.Add(MailboxAddress.Parse($"{local}@{Mesh.DestinationDomain}"));
        message.Subject = "mta-sts";
        message.Body = new TextPart("plain") { Text = "over verified TLS only\r\n" };
        using var client = new SmtpClient();
        await client.ConnectAsync(mesh.Smtp.Address.ToString(), mesh.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(quit: true);
        return Guid.Parse(reply[(reply.LastIndexOf(' ') + 1)..]);
    }
}
