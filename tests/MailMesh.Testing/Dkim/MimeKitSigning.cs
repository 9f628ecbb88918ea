using System.Security.Cryptography;
using System.Text;
using MimeKit;
using MimeKit.Cryptography;

namespace MailMesh.Testing.Dkim;

/// <summary>
/// MimeKit's <see cref="DkimSigner"/> and <see cref="ArcSigner"/> as a sender and an upstream forwarder use them:
/// rsa-sha256, relaxed/relaxed, over From, To, Subject, Date and Message-ID; the message is parsed, signed and written
/// back with CRLF line ends.
/// </summary>
public static class MimeKitSigning
{
    private static readonly HeaderId[] SignedHeaders = [HeaderId.From, HeaderId.To, HeaderId.Subject, HeaderId.Date, HeaderId.MessageId];

    /// <summary><paramref name="message"/> with a DKIM-Signature by <paramref name="key"/> for <paramref name="domain"/> and <paramref name="selector"/>.</summary>
    public static byte[] DkimSign(byte[] message, RSA key, string domain, string selector) =>
        Rewrite(message, key, (parsed, pem) => Relaxed(new DkimSigner(pem, domain, selector, DkimSignatureAlgorithm.RsaSha256)).Sign(parsed, SignedHeaders));

    /// <summary><paramref name="message"/> with an ARC set (RFC 8617: ARC-Authentication-Results, ARC-Message-Signature,
    /// ARC-Seal) by <paramref name="key"/> for <paramref name="domain"/> and <paramref name="selector"/>, whose
    /// ARC-Authentication-Results say "<paramref name="authServId"/>; <paramref name="method"/>=<paramref name="result"/>".</summary>
    public static byte[] ArcSeal(byte[] message, RSA key, string domain, string selector, string authServId, string method, string result) =>
        Rewrite(message, key, (parsed, pem) => Relaxed(new Forwarder(pem, domain, selector, authServId, method, result)).Sign(parsed, SignedHeaders));

    private static T Relaxed<T>(T signer)
        where T : DkimSignerBase
    {
        signer.HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed;
        signer.BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed;
        return signer;
    }

    private static byte[] Rewrite(byte[] message, RSA key, Action<MimeMessage, Stream> sign)
    {
        using var input = new MemoryStream(message);
        var parsed = MimeMessage.Load(input);
        using (var pem = new MemoryStream(Encoding.ASCII.GetBytes(key.ExportRSAPrivateKeyPem())))
        {
            sign(parsed, pem);
        }

        using var output = new MemoryStream();
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        parsed.WriteTo(options, output);
        return output.ToArray();
    }

    /// <summary>An ArcSigner whose ARC-Authentication-Results are given, as a forwarder's own checks would have found.</summary>
    private sealed class Forwarder(Stream key, string domain, string selector, string authServId, string method, string result)
        : ArcSigner(key, domain, selector, DkimSignatureAlgorithm.RsaSha256)
    {
        protected override AuthenticationResults GenerateArcAuthenticationResults(FormatOptions options, MimeMessage message, CancellationToken cancellationToken)
        {
            var results = new AuthenticationResults(authServId);
            results.Results.Add(new AuthenticationMethodResult(method, result));
            return results;
        }

        protected override Task<AuthenticationResults> GenerateArcAuthenticationResultsAsync(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
            Task.FromResult(GenerateArcAuthenticationResults(options, message, cancellationToken));
    }
}
