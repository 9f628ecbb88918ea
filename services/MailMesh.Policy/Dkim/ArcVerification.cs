using MimeKit;
using MimeKit.Cryptography;

namespace MailMesh.Policy.Dkim;

/// <summary>
/// ARC chain validation (RFC 8617 §5.2) with MimeKit's <see cref="ArcVerifier"/>, keys from DNS: "arc=none" without
/// ARC sets, "arc=pass" for a valid chain, "arc=fail" otherwise (a key that could not be had fails the chain; the
/// comment says so). The result is reported, never acted on.
/// </summary>
internal sealed class ArcVerification(DnsKeyLocator locator)
{
    public async Task<string> VerifyAsync(MimeMessage message, CancellationToken cancellationToken)
    {
        if (!message.Headers.Contains(HeaderId.ArcSeal))
        {
            return "arc=none";
        }

        var verifier = new ArcVerifier(locator);
        verifier.Enable(DkimSignatureAlgorithm.Ed25519Sha256);
        try
        {
            var result = await verifier.VerifyAsync(message, cancellationToken);
            var instances = message.Headers.Count(h => h.Id == HeaderId.ArcSeal);
            return result.Chain switch
            {
                ArcSignatureValidationResult.Pass => $"arc=pass (i={instances})",
                ArcSignatureValidationResult.None => "arc=none",
                _ => $"arc=fail (i={instances})",
            };
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            return DkimVerification.Find<DkimKeyException>(ex) is { Temporary: true }
                ? "arc=fail (key lookup failed)"
                : "arc=fail (chain could not be validated)";
        }
    }
}
