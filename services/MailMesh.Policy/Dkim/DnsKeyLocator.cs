using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;

namespace MailMesh.Policy.Dkim;

/// <summary>Why a DKIM key could not be had: temporarily (DNS failed: temperror) or not at all (permerror).</summary>
internal sealed class DkimKeyException(string message, bool temporary) : Exception(message)
{
    public bool Temporary { get; } = temporary;
}

/// <summary>
/// MimeKit's key locator over <see cref="AuthenticationDns"/>: the TXT record at selector._domainkey.domain (RFC 6376
/// §3.6.2), parsed by MimeKit. No record, an empty p= (a revoked key) or a record MimeKit cannot read is a permanent
/// error; a DNS failure a temporary one (<see cref="DkimKeyException"/>).
/// </summary>
internal sealed class DnsKeyLocator(AuthenticationDns dns) : DkimPublicKeyLocatorBase
{
    public override AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
        LocatePublicKeyAsync(methods, domain, selector, cancellationToken).GetAwaiter().GetResult();

    public override async Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default)
    {
        if (!methods.Split(':').Any(m => m.Trim().Equals("dns/txt", StringComparison.OrdinalIgnoreCase)))
        {
            throw new DkimKeyException("no supported query method", temporary: false);
        }

        var name = selector + "._domainkey." + domain;
        var lookup = await dns.TxtAsync(name, cancellationToken);
        switch (lookup.Status)
        {
            case TxtStatus.TempError:
                throw new DkimKeyException("key lookup failed", temporary: true);
            case TxtStatus.None:
                throw new DkimKeyException("no key for signature", temporary: false);
        }

        var record = lookup.Records[0];
        if (TagList.Parse(record) is { } tags && tags.Get("p") is { Length: 0 })
        {
            throw new DkimKeyException("key revoked", temporary: false);
        }

        try
        {
            return GetPublicKey(record);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new DkimKeyException("unreadable key record", temporary: false);
        }
    }
}
