using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using MailMesh.Storage;
using MailMesh.Storage.Sqlite;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Https;
using MailMesh.Testing.Smtp;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using MimeKit;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// TLS reporting (RFC 8460): counts from two "replicas" (two recorders) added to one store, the daily report built,
/// validated against the RFC 8460 §4.4 schema (Schemas/tlsrpt-rfc8460.schema.json), gzipped and sent to both rua
/// kinds: mailto: (queued in the spool as a multipart/report) and https: (POSTed to a local HTTPS server).
/// </summary>
public sealed class TlsReportTests : IAsyncLifetime
{
    private const string Domain = "sts.test";
    private readonly TestCertificates _ca = TestCertificates.CreateAuthority();
    private readonly string _bundle = Path.Combine(Path.GetTempPath(), $"mailmesh-rpt-ca-{Guid.NewGuid():N}.pem");
    private readonly string _sqlite = Path.Combine(Path.GetTempPath(), $"mailmesh-rpt-{Guid.NewGuid():N}.db");
    private readonly TestDnsServer _dns = TestDnsServer.Start();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 1, 10, 0, 0, TimeSpan.Zero));
    private MtaStsPolicyServer _https = null!;
    private SqliteDatabase _database = null!;

    public async Task InitializeAsync()
    {
        _ca.WritePem(_bundle);
        _https = await MtaStsPolicyServer.StartAsync(_ca.IssueServer("localhost"));
        _database = new SqliteDatabase(_sqlite);
        await new SqliteSchemaMigrator(_database, NullLogger<SqliteSchemaMigrator>.Instance).MigrateAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _https.DisposeAsync();
        await _database.DisposeAsync();
        _dns.Dispose();
        _ca.Dispose();
        File.Delete(_bundle);
        foreach (var file in Directory.GetFiles(Path.GetDirectoryName(_sqlite)!, Path.GetFileName(_sqlite) + "*"))
        {
            File.Delete(file);
        }
    }

    private IOptions<DeliveryOptions> Options()
    {
        var options = new DeliveryOptions();
        options.Tls.DnsServers = _dns.EndPoint.ToString();
        options.Tls.MtaSts.ExtraTrustedRootsPath = _bundle;
        options.Tls.Reporting.Enabled = true;
        options.Tls.Reporting.SendReports = true;
        options.Tls.Reporting.OrganizationName = "MailMesh Test Org";
        options.Tls.Reporting.ContactInfo = "tlsrpt@sender.test";
        return Microsoft.Extensions.Options.Options.Create(options);
    }

    // Built once: JsonSchema.Net registers a schema under its $id, and refuses a second registration.
    private static readonly Lazy<JsonSchema> LoadedSchema = new(() =>
        JsonSchema.FromText(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Schemas", "tlsrpt-rfc8460.schema.json"))));

    internal static JsonSchema Schema() => LoadedSchema.Value;

    internal static void AssertValid(byte[] json)
    {
        var result = Schema().Evaluate(JsonDocument.Parse(json).RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(result.IsValid, Encoding.UTF8.GetString(json) + "\n" + JsonSerializer.Serialize(result));
    }

    [Fact]
    public void The_RFC_8460_example_report_is_valid_under_the_schema() => AssertValid(Encoding.UTF8.GetBytes("""
        {
          "organization-name": "Company-X",
          "date-range": { "start-datetime": "2016-04-01T00:00:00Z", "end-datetime": "2016-04-01T23:59:59Z" },
          "contact-info": "sts-reporting@company-x.example",
          "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
          "policies": [{
            "policy": {
              "policy-type": "sts",
              "policy-string": ["version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"],
              "policy-domain": "company-y.example",
              "mx-host": "*.mail.company-y.example"
            },
            "summary": { "total-successful-session-count": 5326, "total-failure-session-count": 303 },
            "failure-details": [{
              "result-type": "certificate-expired",
              "sending-mta-ip": "2001:db8:abcd:0012::1",
              "receiving-mx-hostname": "mx1.mail.company-y.example",
              "failed-session-count": 100
            }, {
              "result-type": "starttls-not-supported",
              "sending-mta-ip": "2001:db8:abcd:0013::1",
              "receiving-mx-hostname": "mx2.mail.company-y.example",
              "receiving-ip": "203.0.113.56",
              "failed-session-count": 200,
              "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"
            }, {
              "result-type": "validation-failure",
              "sending-mta-ip": "198.51.100.62",
              "receiving-ip": "203.0.113.58",
              "receiving-mx-hostname": "mx-backup.mail.company-y.example",
              "failed-session-count": 3,
              "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
            }]
          }]
        }
        """));

    [Fact]
    public void A_report_missing_its_summary_is_not_valid() =>
        Assert.False(Schema().Evaluate(JsonDocument.Parse("""
            {"organization-name":"x","date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"},
             "contact-info":"a@b","report-id":"1","policies":[{"policy":{"policy-type":"sts","policy-domain":"d"}}]}
            """).RootElement).IsValid);

    [Fact]
    public async Task Two_replicas_counts_make_one_report_sent_by_mail_and_HTTPS()
    {
        _dns.AddTxt("_smtp._tls." + Domain, $"v=TLSRPTv1; rua=mailto:reports@{Domain},https://localhost:{_https.Port}/tlsrpt", ttl: 0);
        var options = Options();
        var store = new SqliteTlsReportStore(_database);
        var spool = new SqliteSpool(_database);
        string[] sts = ["version: STSv1", "mode: enforce", $"mx: mx1.{Domain}", "max_age: 86400"];

        // Replica A: 3 successes and a certificate failure; replica B: 2 successes and the same failure.
        var replicaA = new TlsReportRecorder(options, _time);
        var replicaB = new TlsReportRecorder(options, _time);
        for (var i = 0; i < 3; i++)
        {
            replicaA.Success(Domain, "sts", sts);
        }

        replicaA.Failure(Domain, "sts", sts, "certificate-not-trusted", $"mx1.{Domain}", "127.0.0.1", "untrusted certificate chain");
        replicaB.Success(Domain, "sts", sts);
        replicaB.Success(Domain, "sts", sts);
        replicaB.Failure(Domain, "sts", sts, "certificate-not-trusted", $"mx1.{Domain}", "127.0.0.1", "untrusted certificate chain");
        replicaB.Failure(Domain, "tlsa", [], "dnssec-invalid", $"mx2.{Domain}", "127.0.0.2", null);

        var dns = new TlsPolicyDns(options);
        using var serviceA = new TlsReportService(replicaA, store, spool, dns, options, _time, NullLogger<TlsReportService>.Instance);
        using var serviceB = new TlsReportService(replicaB, store, spool, dns, options, _time, NullLogger<TlsReportService>.Instance);
        await serviceA.FlushAsync(CancellationToken.None);
        await serviceB.FlushAsync(CancellationToken.None);

        // The next UTC day, after SendAfter: both replicas run their round; one sends.
        _time.SetUtcNow(new DateTimeOffset(2026, 12, 2, 1, 0, 0, TimeSpan.Zero));
        await serviceA.RunOnceAsync(CancellationToken.None);
        await serviceB.RunOnceAsync(CancellationToken.None);

        var (contentType, body) = Assert.Single(_https.Posted);
        Assert.Equal("application/tlsrpt+gzip", contentType);
        var json = Gunzip(body);
        AssertValid(json);
        var report = JsonNode.Parse(json)!;
        Assert.Equal("MailMesh Test Org", (string?)report["organization-name"]);
        Assert.Equal("2026-12-01T00:00:00Z", (string?)report["date-range"]!["start-datetime"]);
        Assert.Equal("2026-12-01T23:59:59Z", (string?)report["date-range"]!["end-datetime"]);
        var policies = report["policies"]!.AsArray();
        var stsPolicy = policies.Single(p => (string?)p!["policy"]!["policy-type"] == "sts")!;
        Assert.Equal(5, (long)stsPolicy["summary"]!["total-successful-session-count"]!);
        Assert.Equal(2, (long)stsPolicy["summary"]!["total-failure-session-count"]!);
        var failure = Assert.Single(stsPolicy["failure-details"]!.AsArray())!;
        Assert.Equal(("certificate-not-trusted", 2L, "127.0.0.1"),
            ((string?)failure["result-type"], (long)failure["failed-session-count"]!, (string?)failure["receiving-ip"]));
        Assert.Equal($"mx1.{Domain}", (string?)stsPolicy["policy"]!["mx-host"]![0]);
        var tlsa = policies.Single(p => (string?)p!["policy"]!["policy-type"] == "tlsa")!;
        Assert.Equal("dnssec-invalid", (string?)tlsa["failure-details"]![0]!["result-type"]);

        // The mail: one multipart/report queued for the mailto: rua, with the same report as application/tlsrpt+gzip.
        var mail = await ReportMailAsync();
        Assert.Equal($"reports@{Domain}", Assert.Single(mail.To.Mailboxes).Address);
        Assert.Equal(Domain, mail.Headers["TLS-Report-Domain"]);
        Assert.Equal("sender.test", mail.Headers["TLS-Report-Submitter"]);
        Assert.StartsWith($"Report Domain: {Domain} Submitter: sender.test Report-ID: <", mail.Subject, StringComparison.Ordinal);
        var multipart = Assert.IsAssignableFrom<Multipart>(mail.Body);
        Assert.Equal("multipart/report", multipart.ContentType.MimeType);
        Assert.Equal("tlsrpt", multipart.ContentType.Parameters["report-type"]);
        var attachment = Assert.Single(multipart.OfType<MimePart>(), p => p.ContentType.MimeType == "application/tlsrpt+gzip");
        Assert.Matches(@"^sender\.test!sts\.test!1796083200!1796169600!.+\.json\.gz$", attachment.FileName);
        using var decoded = new MemoryStream();
        await attachment.Content!.DecodeToAsync(decoded);
        Assert.Equal(json, Gunzip(decoded.ToArray()));

        // Sent once: another round finds nothing unsent.
        Assert.Equal(0, await serviceA.SendDayAsync(new DateOnly(2026, 12, 1), CancellationToken.None));
        Assert.Single(_https.Posted);
    }

    [Fact]
    public async Task A_domain_without_a_TLSRPT_record_gets_no_report()
    {
        var options = Options();
        var store = new SqliteTlsReportStore(_database);
        var recorder = new TlsReportRecorder(options, _time);
        recorder.Success("quiet.test", "no-policy-found", []);
        using var service = new TlsReportService(recorder, store, new SqliteSpool(_database), new TlsPolicyDns(options), options, _time,
            NullLogger<TlsReportService>.Instance);
        await service.FlushAsync(CancellationToken.None);

        Assert.Equal(0, await service.SendDayAsync(new DateOnly(2026, 12, 1), CancellationToken.None));
        Assert.Empty(_https.Posted);
    }

    [Theory]
    [InlineData("v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/x", 2)]
    [InlineData("v=TLSRPTv1;rua=mailto:a@example.com", 1)]
    [InlineData("v=TLSRPTv1; rua=http://insecure.example.com/", 0)]
    [InlineData("v=TLSRPTv2; rua=mailto:a@example.com", 0)]
    public void The_rua_comes_from_one_TLSRPTv1_record(string record, int count) =>
        Assert.Equal(count, TlsReport.ParseRua([record]).Count);

    private async Task<MimeMessage> ReportMailAsync()
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_sqlite}");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT content FROM spool_contents";
        var content = (byte[])(await command.ExecuteScalarAsync())!;
        return await MimeMessage.LoadAsync(new MemoryStream(content));
    }

    private static byte[] Gunzip(byte[] gzip)
    {
        using var input = new GZipStream(new MemoryStream(gzip), CompressionMode.Decompress);
        using var output = new MemoryStream();
        input.CopyTo(output);
        return output.ToArray();
    }
}
