using Bunit;
using MailMesh.Admin.Api;
using MailMesh.Admin.Components.Pages;

namespace MailMesh.Admin.Tests;

/// <summary>A message's attempts show their session's TLS: protocol, cipher, and whether and how it was verified.</summary>
public sealed partial class PageTests
{
    [Fact]
    public void Each_attempt_shows_its_TLS_and_how_the_certificate_was_verified()
    {
        LogIn(AdminRoles.Viewer);
        var id = Guid.NewGuid();
        var at = DateTimeOffset.Parse("2030-01-02T03:04:05Z");
        _api.Details[id] = new MessageDetail(
            id, "app@origin.test", at, 100, "smtp", null, null, null, null, "SevenBit", false, false, null, null, [],
            [new RecipientItem("user@dest.test", "dest.test", "delivered", 4, null, 250, "2.0.0", "OK", "mx.dest.test",
            [
                new AttemptItem(at, "deferred", 451, "4.4.1", "no answer", "mx.dest.test", "ConnectionFailure"),
                new AttemptItem(at.AddMinutes(1), "deferred", 451, "4.3.0", "not now", "mx.dest.test", "Transient", new AttemptTlsItem("none", null, false, "none")),
                new AttemptItem(at.AddMinutes(2), "deferred", 451, "4.3.0", "not now", "mx.dest.test", "Transient", new AttemptTlsItem("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false, "none")),
                new AttemptItem(at.AddMinutes(3), "delivered", 250, "2.0.0", "OK", "mx.dest.test", null, new AttemptTlsItem("TLSv1.3", "TLS_AES_256_GCM_SHA384", true, "dane")),
            ], null)],
            []);

        var page = Render<MessageDetailPage>(p => p.Add(x => x.Id, id));

        // The cipher is on a line of its own (a <br>), so it follows the badge without a space in the text.
        var cells = page.FindAll("[data-testid=attempt-tls]").Select(c => string.Join(' ', c.TextContent.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))).ToList();
        Assert.Equal(
            ["no session", "clear text", "TLSv1.2 not verifiedTLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLSv1.3 verified: DANETLS_AES_256_GCM_SHA384"],
            cells);
        Assert.Equal("TLS", page.FindAll("article.recipient thead th")[^1].TextContent);
    }

    [Theory]
    [InlineData("dane", true, "verified: DANE")]
    [InlineData("mta-sts", true, "verified: MTA-STS")]
    [InlineData("webpki", true, "verified: WebPKI")]
    [InlineData("none", false, "not verified")]
    public void Verification_is_named(string how, bool verified, string expected) =>
        Assert.Equal(expected, MessageDetailPage.VerificationLabel(new AttemptTlsItem("TLSv1.3", "TLS_AES_128_GCM_SHA256", verified, how)));
}
