using System.Text;
using MailMesh.Contracts;
using MailMesh.Testing.Smtp;

namespace MailMesh.Delivery.Tests;

/// <summary>STARTTLS (RFC 3207) policies and REQUIRETLS (RFC 8689) against the test sink speaking TLS.</summary>
public sealed class TlsDeliveryTests : IDisposable
{
    private static readonly byte[] Content = Encoding.ASCII.GetBytes("From: a@origin.test\r\nSubject: tls\r\n\r\nSecret.\r\n");
    private readonly TestCertificates _ca = TestCertificates.CreateAuthority();
    private readonly string _bundle = Path.Combine(Path.GetTempPath(), $"mailmesh-ca-{Guid.NewGuid():N}.pem");

    public TlsDeliveryTests() => _ca.WritePem(_bundle);

    private Dictionary<string, string?> Settings(string? policy = null, bool trustCa = true)
    {
        var settings = new Dictionary<string, string?>();
        if (policy is not null)
        {
            settings["Delivery:Tls:Policies:dest.test"] = policy;
        }

        if (trustCa)
        {
            settings["Delivery:Tls:TrustedCertificatesPath"] = _bundle;
        }

        return settings;
    }

    [Fact]
    public async Task Opportunistic_is_the_default_and_uses_TLS_when_offered()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings());
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = TestCertificates.SelfSigned("unrelated.example");

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        AssertDelivered(Assert.Single(attempt.Results));
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.True(received.Tls);
        Assert.Equal(Content, received.Data);

        // The attempt keeps its session's TLS: encrypted, but a certificate nobody vouches for is not verified.
        Assert.Matches("^TLSv1\\.[23]$", attempt.Tls?.Protocol);
        Assert.StartsWith("TLS_", attempt.Tls!.Cipher, StringComparison.Ordinal);
        Assert.Equal("none", attempt.Tls.Verification);

        // RFC 3207 §4.2: EHLO again after the handshake.
        Assert.Equal(["EHLO", "STARTTLS", "EHLO"], f.Sink.Commands.Select(c => c.Split(' ')[1]).Take(3));
    }

    [Fact]
    public async Task Opportunistic_stays_in_clear_text_when_STARTTLS_is_not_offered()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        AssertDelivered(Assert.Single(attempt.Results));
        Assert.False(Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Tls);
        Assert.DoesNotContain(f.Sink.Commands, c => c.EndsWith("STARTTLS", StringComparison.Ordinal));
        Assert.Equal(new AttemptTls { Protocol = "none", Verification = "none" }, attempt.Tls);
    }

    [Fact]
    public async Task Opportunistic_retries_in_clear_text_when_the_handshake_fails()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = TestCertificates.SelfSigned("mx1.dest.test");
        f.Sink.FailTlsHandshake = true;

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        AssertDelivered(Assert.Single(attempt.Results));
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.False(received.Tls);
        Assert.Equal(2, received.ConnectionId);
        Assert.Equal(1, f.Sink.Commands.Count(c => c.EndsWith("STARTTLS", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Opportunistic_goes_on_in_clear_text_when_STARTTLS_is_refused()
    {
        await using var f = await DeliveryFixture.StartAsync();
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = TestCertificates.SelfSigned("mx1.dest.test");
        f.Sink.StartTlsReply = "454 4.7.0 TLS not available due to temporary reason";

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        AssertDelivered(Assert.Single(attempt.Results));
        Assert.False(Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Tls);
        Assert.Equal(1, f.Sink.ConnectionCount);
    }

    [Fact]
    public async Task None_never_starts_TLS()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings("none"));
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = TestCertificates.SelfSigned("mx1.dest.test");

        await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        Assert.False(Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Tls);
    }

    [Fact]
    public async Task Required_defers_with_4_7_4_when_STARTTLS_is_not_offered()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings("required"));
        f.Route("dest.test", f.Sink);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Deferred, 451, "4.7.4"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.Contains("TLS is required", result.ReplyText, StringComparison.Ordinal);
        Assert.DoesNotContain(f.Sink.Commands, c => c.Contains("MAIL FROM", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Required_defers_with_4_7_5_when_the_handshake_fails()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings("required"));
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = TestCertificates.SelfSigned("mx1.dest.test");
        f.Sink.FailTlsHandshake = true;

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Deferred, 451, "4.7.5"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.Equal(1, f.Sink.ConnectionCount);
    }

    [Fact]
    public async Task Required_accepts_any_certificate()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings("required", trustCa: false));
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = TestCertificates.SelfSigned("someone.else.example");

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        AssertDelivered(Assert.Single(attempt.Results));
        Assert.True(Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Tls);
    }

    [Fact]
    public async Task Verified_delivers_with_a_certificate_from_the_trusted_bundle()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings("verified"));
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = _ca.IssueServer("mx1.dest.test");

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        AssertDelivered(Assert.Single(attempt.Results));
        Assert.True(Assert.Single(await f.Sink.WaitForMessagesAsync(1)).Tls);
        Assert.Equal("webpki", attempt.Tls?.Verification);
    }

    [Fact]
    public async Task Verified_matches_a_wildcard_for_the_MX_name()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings("verified"));
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = _ca.IssueServer("*.dest.test");

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        AssertDelivered(Assert.Single(attempt.Results));
    }

    [Fact]
    public async Task Verified_defers_with_4_7_5_on_a_name_mismatch()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings("verified"));
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = _ca.IssueServer("mx.elsewhere.test");

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Deferred, 451, "4.7.5"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.Contains("does not match", result.ReplyText, StringComparison.Ordinal);
        Assert.Empty(f.Sink.Messages);
    }

    [Fact]
    public async Task Verified_defers_with_4_7_5_on_an_untrusted_certificate()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings("verified", trustCa: false));
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = _ca.IssueServer("mx1.dest.test");

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Deferred, 451, "4.7.5"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.Contains("not verified", result.ReplyText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verified_fails_over_to_an_exchanger_that_passes()
    {
        await using var f = await DeliveryFixture.StartAsync(sinks: 2, settings: Settings("verified"));
        f.Route("dest.test", f.Sinks[0], f.Sinks[1]);
        f.Sinks[0].Tls = TestCertificates.SelfSigned("mx1.dest.test");
        f.Sinks[1].Tls = _ca.IssueServer("mx2.dest.test");

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "dest.test", "rcpt@dest.test"));

        AssertDelivered(Assert.Single(attempt.Results));
        Assert.Equal("mx2.dest.test", attempt.RemoteHost);
    }

    [Fact]
    public async Task Policy_for_a_parent_domain_covers_subdomains()
    {
        var settings = Settings();
        settings["Delivery:Tls:Policies:.parent.test"] = "required";
        await using var f = await DeliveryFixture.StartAsync(settings: settings);
        f.Route("sub.parent.test", f.Sink);

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "sub.parent.test", "rcpt@sub.parent.test"));

        Assert.Equal("4.7.4", Assert.Single(attempt.Results).EnhancedCode);
    }

    [Fact]
    public async Task Connections_are_pooled_per_TLS_state()
    {
        var settings = Settings();
        settings["Delivery:Tls:Policies:strict.test"] = "verified";
        await using var f = await DeliveryFixture.StartAsync(settings: settings);
        f.Sink.Tls = _ca.IssueServer("mx.shared.test");
        f.Dns.AddMx("loose.test", 10, "mx.shared.test").AddMx("strict.test", 10, "mx.shared.test").AddAddress("mx.shared.test", f.Sink.Address.ToString());

        await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "loose.test", "a@loose.test"));
        await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "strict.test", "a@strict.test"));
        await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "loose.test", "b@loose.test"));
        await f.DeliverAsync(DeliveryFixture.Request(f.Store(Content).Id, "strict.test", "b@strict.test"));

        var messages = await f.Sink.WaitForMessagesAsync(4);
        Assert.Equal(2, f.Sink.ConnectionCount);
        Assert.Equal(messages[0].ConnectionId, messages[2].ConnectionId);
        Assert.Equal(messages[1].ConnectionId, messages[3].ConnectionId);
        Assert.NotEqual(messages[0].ConnectionId, messages[1].ConnectionId);
    }

    [Fact]
    public async Task REQUIRETLS_is_sent_over_a_verified_session_that_advertises_it()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings());
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = _ca.IssueServer("mx1.dest.test");
        f.Sink.TlsExtensions.Add("REQUIRETLS");
        var stored = f.Store(f.Store(Content) with { Id = Guid.NewGuid(), RequireTls = true });

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        AssertDelivered(Assert.Single(attempt.Results));
        var received = Assert.Single(await f.Sink.WaitForMessagesAsync(1));
        Assert.True(received.Tls);
        Assert.Contains("REQUIRETLS", received.MailParameters.Split(' '));
    }

    [Fact]
    public async Task REQUIRETLS_bounces_with_5_7_30_when_the_server_does_not_advertise_it()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings());
        f.Route("dest.test", f.Sink);
        f.Sink.Tls = _ca.IssueServer("mx1.dest.test");
        var stored = f.Store(f.Store(Content) with { Id = Guid.NewGuid(), RequireTls = true });

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Bounced, 550, "5.7.30"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.StartsWith("REQUIRETLS support required", result.ReplyText, StringComparison.Ordinal);
        Assert.DoesNotContain(f.Sink.Commands, c => c.Contains("MAIL FROM", StringComparison.Ordinal));
    }

    [Fact]
    public async Task REQUIRETLS_bounces_with_5_7_30_without_STARTTLS_and_never_goes_in_clear()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings());
        f.Route("dest.test", f.Sink);
        f.Sink.Extensions.Add("REQUIRETLS");
        var stored = f.Store(f.Store(Content) with { Id = Guid.NewGuid(), RequireTls = true });

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        var result = Assert.Single(attempt.Results);
        Assert.Equal((DeliveryOutcome.Bounced, 550, "5.7.30"), (result.Outcome, result.ReplyCode, result.EnhancedCode));
        Assert.Empty(f.Sink.Messages);
    }

    [Fact]
    public async Task REQUIRETLS_defers_when_an_exchanger_was_merely_unreachable()
    {
        await using var f = await DeliveryFixture.StartAsync(settings: Settings());
        f.Sink.Tls = _ca.IssueServer("mx2.dest.test");
        f.Dns.AddMx("dest.test", 10, "mx1.dest.test").AddAddress("mx1.dest.test", "127.0.0.9")
            .AddMx("dest.test", 20, "mx2.dest.test").AddAddress("mx2.dest.test", f.Sink.Address.ToString());
        var stored = f.Store(f.Store(Content) with { Id = Guid.NewGuid(), RequireTls = true });

        var attempt = await f.DeliverAsync(DeliveryFixture.Request(stored.Id, "dest.test", "rcpt@dest.test"));

        Assert.Equal(DeliveryOutcome.Deferred, Assert.Single(attempt.Results).Outcome);
    }

    private static void AssertDelivered(RecipientResult result) =>
        Assert.True(result.Outcome == DeliveryOutcome.Delivered, $"{result.Outcome}: {result.ReplyCode} {result.EnhancedCode} {result.ReplyText}");

    public void Dispose()
    {
        _ca.Dispose();
        File.Delete(_bundle);
    }
}
