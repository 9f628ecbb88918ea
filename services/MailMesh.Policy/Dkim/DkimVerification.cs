using MimeKit;
using MimeKit.Cryptography;

namespace MailMesh.Policy.Dkim;

/// <summary>One DKIM signature's result (RFC 8601 §2.7.1) with its signing domain, selector and identity.</summary>
internal sealed record DkimOutcome(string Result, string? Domain, string? Selector, string? Identity, string? Comment = null)
{
    public static DkimOutcome None { get; } = new("none", null, null, null);

    /// <summary>"dkim=pass header.d=example.com header.s=s1 header.i=@example.com", with a comment when there is one.</summary>
    public override string ToString()
    {
        var text = "dkim=" + Result;
        if (Comment is not null)
        {
            text += " (" + Comment + ")";
        }

        if (Domain is not null)
        {
            text += " header.d=" + Content.ContentChecks.Value(Domain);
        }

        if (Selector is not null)
        {
            text += " header.s=" + Content.ContentChecks.Value(Selector);
        }

        if (Identity is not null)
        {
            text += " header.i=" + Content.ContentChecks.Value(Identity);
        }

        return text;
    }
}

/// <summary>
/// DKIM verification (RFC 6376 §6) with MimeKit's <see cref="DkimVerifier"/> and keys from DNS (<see cref="DnsKeyLocator"/>):
/// the first <see cref="DkimVerifyOptions.MaxSignatures"/> DKIM-Signature fields, top down. Results: pass; fail (the
/// signature or body hash does not verify, or rsa-sha1, which RFC 8301 forbids accepting); permerror (a malformed
/// signature, no key, a revoked or unreadable key); temperror (the key lookup failed); none (no signature).
/// </summary>
internal sealed class DkimVerification(DnsKeyLocator locator, Microsoft.Extensions.Options.IOptions<DkimVerifyOptions> options)
{
    private readonly DkimVerifyOptions _options = options.Value;

    public async Task<IReadOnlyList<DkimOutcome>> VerifyAsync(MimeMessage message, CancellationToken cancellationToken)
    {
        var signatures = message.Headers.Where(h => h.Id == HeaderId.DkimSignature).Take(_options.MaxSignatures).ToList();
        if (signatures.Count == 0)
        {
            return [DkimOutcome.None];
        }

        var verifier = new DkimVerifier(locator) { MinimumRsaKeyLength = _options.MinimumRsaKeyBits };
        verifier.Enable(DkimSignatureAlgorithm.Ed25519Sha256);
        var outcomes = new List<DkimOutcome>(signatures.Count);
        foreach (var signature in signatures)
        {
            outcomes.Add(await VerifyOneAsync(verifier, message, signature, cancellationToken));
        }

        return outcomes;
    }

    private static async Task<DkimOutcome> VerifyOneAsync(DkimVerifier verifier, MimeMessage message, Header signature, CancellationToken cancellationToken)
    {
        var tags = TagList.Parse(signature.Value);
        var domain = tags?.Get("d")?.ToLowerInvariant();
        var selector = tags?.Get("s");
        var identity = tags?.Get("i") ?? (domain is null ? null : "@" + domain);
        if (tags is null || domain is null || selector is null || tags.Get("b") is null || tags.Get("bh") is null || tags.Get("h") is not { } signed)
        {
            return new DkimOutcome("permerror", domain, selector, identity, "signature syntax error");
        }

        // RFC 6376 §5.4: From must be signed.
        if (!signed.Split(':').Any(h => h.Trim().Equals("from", StringComparison.OrdinalIgnoreCase)))
        {
            return new DkimOutcome("permerror", domain, selector, identity, "From not signed");
        }

        if (tags.Get("a") is { } algorithm && algorithm.Trim().Equals("rsa-sha1", StringComparison.OrdinalIgnoreCase))
        {
            return new DkimOutcome("fail", domain, selector, identity, "rsa-sha1 not accepted, RFC 8301");
        }

        try
        {
            var valid = await verifier.VerifyAsync(message, signature, cancellationToken);
            return new DkimOutcome(valid ? "pass" : "fail", domain, selector, identity, valid ? null : "signature did not verify");
        }
        catch (Exception ex) when (Find<DkimKeyException>(ex) is { } key)
        {
            return new DkimOutcome(key.Temporary ? "temperror" : "permerror", domain, selector, identity, key.Message);
        }
        catch (Exception ex) when (ex is FormatException or NotSupportedException or ArgumentException)
        {
            return new DkimOutcome("permerror", domain, selector, identity, "signature syntax error");
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            if (ex is OperationCanceledException or TimeoutException)
            {
                return new DkimOutcome("temperror", domain, selector, identity, "key lookup timed out");
            }

            return new DkimOutcome("permerror", domain, selector, identity, "signature could not be verified");
        }
    }

    internal static T? Find<T>(Exception? exception)
        where T : Exception
    {
        for (; exception is not null; exception = exception.InnerException)
        {
            if (exception is T found)
            {
                return found;
            }
        }

        return null;
    }
}
