using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Testing.Dns;
using MailMesh.Testing.Smtp;
using Microsoft.Extensions.DependencyInjection;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// A zone signed with a fresh key (ldns-signzone), served on loopback, and Debian's unbound validating it with that
/// key as its trust anchor: the resolver Delivery trusts for the AD bit (Delivery:Tls:DnsServers, Dane:Enabled).
/// </summary>
public sealed class DaneZone : IAsyncLifetime
{
    /// <summary>The certificate every test sink presents: self-signed, for a name no MX has (DANE-EE ignores names).</summary>
    public X509Certificate2 Certificate { get; } = TestCertificates.SelfSigned("not-the-mx.example");

    public SignedZone Zone { get; private set; } = null!;

    public UnboundResolver Resolver { get; private set; } = null!;

    /// <summary>SHA-256 of the certificate's SubjectPublicKeyInfo: the data of a "3 1 1" TLSA record.</summary>
    public string SpkiSha256 => Convert.ToHexString(SHA256.HashData(Certificate.PublicKey.ExportSubjectPublicKeyInfo()));

    public async Task InitializeAsync()
    {
        var other = Convert.ToHexString(SHA256.HashData(Encoding.ASCII.GetBytes("some other key")));
        Zone = await SignedZone.StartAsync("dane.test",
        [
            // Matching DANE-EE(3) SPKI SHA-256.
            "match MX 10 mx.match", "mx.match A 127.0.0.1", $"_25._tcp.mx.match TLSA 3 1 1 {SpkiSha256}",
            // A DANE-EE record for some other key.
            "mismatch MX 10 mx.mismatch", "mx.mismatch A 127.0.0.1", $"_25._tcp.mx.mismatch TLSA 3 1 1 {other}",
            // No TLSA at all: a secure denial (NSEC).
            "absent MX 10 mx.absent", "mx.absent A 127.0.0.1",
            // Only a PKIX-EE(1) record: unusable for SMTP (RFC 7672 §3.1.3).
            "pkix MX 10 mx.pkix", "mx.pkix A 127.0.0.1", $"_25._tcp.mx.pkix TLSA 1 1 1 {other}",
            // DANE-EE(3) of the whole certificate (selector 0), SHA-512 (matching type 2).
            "full MX 10 mx.full", "mx.full A 127.0.0.1",
            $"_25._tcp.mx.full TLSA 3 0 2 {Convert.ToHexString(SHA512.HashData(Certificate.RawData))}",
        ]);
        Resolver = await UnboundResolver.StartAsync(Zone);
    }

    public Task DisposeAsync()
    {
        Resolver?.Dispose();
        Zone?.Dispose();
        Certificate.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>DANE (RFC 7672) against a validating unbound: matching, mismatching, absent and unusable TLSA records.</summary>
public sealed class DaneDeliveryTests(DaneZone dane) : IClassFixture<DaneZone>
{
    private static readonly byte[] Content = Encoding.ASCII.GetBytes("From: a@origin.test\r\nSubject: dane\r\n\r\nSecret.\r\n");

    private Task<DeliveryFixture> StartAsync(bool daneEnabled = true) => DeliveryFixture.StartAsync(settings: new Dictionary<string, string?>
    {
        // The MX lookups, too, go to the validating resolver (the zone is only reachable through it).
        ["Dns:Servers"] = dane.Resolver.EndPoint.ToString(),
        ["Delivery:Tls:DnsServers"] = dane.Resolver.EndPoint.ToString(),
        ["Delivery:Tls:Dane:Enabled"] = daneEnabled ? "true" : "false",
        ["Delivery:Tls:Reporting:Enabled"] = "true",
    });

    private async Task<(DeliveryFixture Fixture, DeliveryAttempted Attempt)> DeliverAsync(string domain, bool startTls = true)
    {
        var f = await StartAsync();
        if (startTls)
        {
            f.Sink.Tls = dane.Certificate;
        }

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, domain, $"rcpt@{domain}"));
        return (f, attempt);
    }

    [Fact]
    public async Task A_matching_DANE_EE_record_authenticates_a_certificate_whatever_its_name()
    {
        var (f, attempt) = await DeliverAsync("match.dane.test");
        await using var _ = f;

        var result = Assert.Single(attempt.Results);
        Assert.True(result.Outcome == DeliveryOutcome.Delivered, result.ReplyText);
        Assert.True(Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Tls);
        Assert.Equal("dane", attempt.Tls?.Verification);
        var report = Assert.Single(f.Services.GetRequiredService<TlsReportRecorder>().TakePending());
        Assert.Equal(("match.dane.test", "tlsa", 1L), (report.Key.PolicyDomain, report.Key.PolicyType, report.Successes));
        Assert.Contains(dane.SpkiSha256, report.Key.PolicyStrings, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_full_certificate_SHA512_record_matches_too()
    {
        var (f, attempt) = await DeliverAsync("full.dane.test");
        await using var _ = f;

        var result = Assert.Single(attempt.Results);
        Assert.True(result.Outcome == DeliveryOutcome.Delivered, result.ReplyText);
    }

    [Fact]
    public async Task A_mismatching_TLSA_record_defers_with_4_7_5_and_sends_nothing()
    {
        var (f, attempt) = await DeliverAsync("mismatch.dane.test");
        await using var _ = f;

        var result = Assert.Single(attempt.Results);
        Assert.Equal(DeliveryOutcome.Deferred, result.Outcome);
        Assert.Equal("4.7.5", result.EnhancedCode);
        Assert.Equal(BounceClass.TlsFailure, result.Class);
        Assert.Contains("TLSA", result.ReplyText, StringComparison.Ordinal);
        Assert.Empty(f.Sink.Messages);
        // No clear-text retry: the only connection stopped at the handshake.
        Assert.DoesNotContain(f.Sink.Commands, c => c.Contains("MAIL FROM", StringComparison.Ordinal));
        var report = Assert.Single(f.Services.GetRequiredService<TlsReportRecorder>().TakePending());
        Assert.Equal(0, report.Successes);
        Assert.Equal("validation-failure", Assert.Single(report.Failures).Key.ResultType);
    }

    [Fact]
    public async Task A_server_without_STARTTLS_is_not_used_when_it_publishes_TLSA()
    {
        var (f, attempt) = await DeliverAsync("match.dane.test", startTls: false);
        await using var _ = f;

        var result = Assert.Single(attempt.Results);
        Assert.Equal(DeliveryOutcome.Deferred, result.Outcome);
        Assert.Equal("4.7.4", result.EnhancedCode);
        Assert.Empty(f.Sink.Messages);
        var report = Assert.Single(f.Services.GetRequiredService<TlsReportRecorder>().TakePending());
        Assert.Equal("starttls-not-supported", Assert.Single(report.Failures).Key.ResultType);
    }

    [Theory]
    [InlineData("absent.dane.test")]
    [InlineData("pkix.dane.test")]
    public async Task Absent_or_unusable_TLSA_records_leave_opportunistic_TLS(string domain)
    {
        // Without STARTTLS at the server: opportunistic delivers in clear text (no DANE requirement).
        var (f, attempt) = await DeliverAsync(domain, startTls: false);
        await using var _ = f;

        var result = Assert.Single(attempt.Results);
        Assert.True(result.Outcome == DeliveryOutcome.Delivered, result.ReplyText);
        Assert.False(Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Tls);
    }

    [Fact]
    public async Task Without_DANE_enabled_TLSA_records_are_not_looked_at()
    {
        await using var f = await StartAsync(daneEnabled: false);
        f.Sink.Tls = dane.Certificate;

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "mismatch.dane.test", "rcpt@mismatch.dane.test"));

        Assert.Equal(DeliveryOutcome.Delivered, Assert.Single(attempt.Results).Outcome);
    }
}
