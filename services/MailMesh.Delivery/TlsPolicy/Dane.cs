using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MailMesh.Delivery;

/// <summary>One TLSA record (RFC 6698 §2.1): certificate usage, selector, matching type, association data.</summary>
internal sealed record TlsaRecord(byte Usage, byte Selector, byte MatchingType, byte[] Data)
{
    /// <summary>DANE-TA(2): the record names a trust anchor in the server's chain (RFC 7672 §3.1.2).</summary>
    public const byte DaneTa = 2;

    /// <summary>DANE-EE(3): the record names the server's own certificate or key (RFC 7672 §3.1.1).</summary>
    public const byte DaneEe = 3;

    /// <summary>
    /// RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are not used by SMTP clients; together with unknown selectors and
    /// matching types (RFC 7671 §4.1) such records are "unusable".
    /// </summary>
    public bool IsUsable => Usage is DaneTa or DaneEe && Selector is 0 or 1 && MatchingType is 0 or 1 or 2 &&
        (MatchingType != 1 || Data.Length == 32) && (MatchingType != 2 || Data.Length == 64);

    /// <summary>The certificate's selected part (0: the whole DER certificate, 1: its SubjectPublicKeyInfo) hashed as asked.</summary>
    public bool Matches(X509Certificate2 certificate)
    {
        var selected = Selector == 0 ? certificate.RawData : certificate.PublicKey.ExportSubjectPublicKeyInfo();
        var digest = MatchingType switch
        {
            1 => SHA256.HashData(selected),
            2 => SHA512.HashData(selected),
            _ => selected,
        };
        return digest.AsSpan().SequenceEqual(Data);
    }

    public override string ToString() => $"{Usage} {Selector} {MatchingType} {Convert.ToHexString(Data)}";
}

/// <summary>The TLSA records that apply to one exchanger, its TLSA base domain (RFC 7672 §2.2.3: the MX host name).</summary>
internal sealed record DaneRequirement(string BaseDomain, IReadOnlyList<TlsaRecord> Records);
