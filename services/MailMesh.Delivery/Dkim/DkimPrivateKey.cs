using System.Security.Cryptography;
using System.Text;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;
using Org.BouncyCastle.OpenSsl;
using Org.BouncyCastle.Pkcs;
using Org.BouncyCastle.Security;

namespace MailMesh.Delivery.Dkim;

/// <summary>The signing algorithms of RFC 6376 §3.3 and RFC 8463 §3 that MailMesh signs with.</summary>
public enum DkimAlgorithm
{
    /// <summary>"rsa-sha256": RSASSA-PKCS1-v1_5 with SHA-256 (RFC 6376 §3.3.1).</summary>
    RsaSha256,

    /// <summary>"ed25519-sha256": PureEdDSA Ed25519 over the SHA-256 header hash (RFC 8463 §3).</summary>
    Ed25519Sha256,
}

/// <summary>
/// A DKIM private key loaded from PEM: RSA (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY") through .NET's RSA, or
/// Ed25519 (PKCS#8 "PRIVATE KEY") through BouncyCastle (which MimeKit brings; .NET has no Ed25519).
/// </summary>
internal sealed class DkimPrivateKey : IDisposable
{
    private readonly RSA? _rsa;
    private readonly Ed25519PrivateKeyParameters? _ed25519;

    private DkimPrivateKey(RSA rsa)
    {
        _rsa = rsa;
        Algorithm = DkimAlgorithm.RsaSha256;
    }

    private DkimPrivateKey(Ed25519PrivateKeyParameters ed25519)
    {
        _ed25519 = ed25519;
        Algorithm = DkimAlgorithm.Ed25519Sha256;
    }

    public DkimAlgorithm Algorithm { get; }

    /// <summary>RSA modulus size in bits; 256 for Ed25519.</summary>
    public int KeySize => _rsa?.KeySize ?? 256;

    /// <summary>The a= tag value.</summary>
    public string AlgorithmName => Name(Algorithm);

    public static string Name(DkimAlgorithm algorithm) => algorithm == DkimAlgorithm.RsaSha256 ? "rsa-sha256" : "ed25519-sha256";

    public static bool TryParseAlgorithm(string? text, out DkimAlgorithm algorithm)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "rsa-sha256":
                algorithm = DkimAlgorithm.RsaSha256;
                return true;
            case "ed25519-sha256":
                algorithm = DkimAlgorithm.Ed25519Sha256;
                return true;
            default:
                algorithm = default;
                return false;
        }
    }

    /// <summary>Loads a PEM private key.</summary>
    /// <exception cref="InvalidDataException">The text holds no private key MailMesh can sign with.</exception>
    public static DkimPrivateKey FromPem(string pem)
    {
        object? parsed;
        try
        {
            using var reader = new StringReader(pem);
            parsed = new PemReader(reader).ReadObject();
        }
        catch (Exception ex) when (ex is IOException or PemException or ArgumentException or InvalidCastException or SecurityUtilityException)
        {
            throw new InvalidDataException("not a readable PEM private key: " + ex.Message, ex);
        }

        var key = parsed switch
        {
            AsymmetricCipherKeyPair pair => pair.Private,
            AsymmetricKeyParameter { IsPrivate: true } single => single,
            null => throw new InvalidDataException("no PEM block found"),
            _ => throw new InvalidDataException($"the PEM block is a {parsed.GetType().Name}, not a private key"),
        };
        switch (key)
        {
            case RsaPrivateCrtKeyParameters:
                var rsa = RSA.Create();
                try
                {
                    rsa.ImportFromPem(pem);
                }
                catch (Exception ex) when (ex is CryptographicException or ArgumentException)
                {
                    rsa.Dispose();
                    throw new InvalidDataException("not a readable RSA private key: " + ex.Message, ex);
                }

                return new DkimPrivateKey(rsa);
            case Ed25519PrivateKeyParameters ed25519:
                return new DkimPrivateKey(ed25519);
            default:
                throw new InvalidDataException($"a {key.GetType().Name.Replace("PrivateKeyParameters", string.Empty, StringComparison.Ordinal)} key; DKIM signs with RSA or Ed25519");
        }
    }

    /// <summary>Makes a new key: RSA of <paramref name="rsaBits"/> bits or Ed25519.</summary>
    public static DkimPrivateKey Generate(DkimAlgorithm algorithm, int rsaBits = 2048) =>
        algorithm == DkimAlgorithm.RsaSha256
            ? new DkimPrivateKey(RSA.Create(rsaBits))
            : new DkimPrivateKey(new Ed25519PrivateKeyParameters(new SecureRandom()));

    /// <summary>The key as PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----").</summary>
    public string ToPem() => _rsa is not null
        ? _rsa.ExportPkcs8PrivateKeyPem()
        : PemEncoding.WriteString("PRIVATE KEY", PrivateKeyInfoFactory.CreatePrivateKeyInfo(_ed25519!).GetEncoded());

    /// <summary>
    /// The p= tag of the DNS key record (RFC 6376 §3.6.1): for RSA the base64 of the DER SubjectPublicKeyInfo, for
    /// Ed25519 the base64 of the 32-octet public key itself (RFC 8463 §4.2).
    /// </summary>
    public string PublicKeyBase64() => _rsa is not null
        ? Convert.ToBase64String(_rsa.ExportSubjectPublicKeyInfo())
        : Convert.ToBase64String(_ed25519!.GeneratePublicKey().GetEncoded());

    /// <summary>The k= tag: "rsa" or "ed25519".</summary>
    public string KeyType => _rsa is not null ? "rsa" : "ed25519";

    /// <summary>The DNS TXT record's text (RFC 6376 §3.6.1).</summary>
    public string RecordText() => $"v=DKIM1; k={KeyType}; p={PublicKeyBase64()}";

    /// <summary>Signs the canonicalised header data (RFC 6376 §3.7); for Ed25519 its SHA-256 is what is signed (RFC 8463 §3).</summary>
    public byte[] Sign(ReadOnlySpan<byte> headerData)
    {
        if (_rsa is not null)
        {
            return _rsa.SignData(headerData, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        }

        var digest = SHA256.HashData(headerData);
        var signer = new Ed25519Signer();
        signer.Init(true, _ed25519);
        signer.BlockUpdate(digest, 0, digest.Length);
        return signer.GenerateSignature();
    }

    public void Dispose() => _rsa?.Dispose();

    /// <summary>The record as a zone file line, its text split into strings of at most 255 octets (RFC 1035 §3.3.14).</summary>
    public static string ZoneLine(string selector, string domain, string recordText)
    {
        var line = new StringBuilder().Append(selector).Append("._domainkey.").Append(domain.TrimEnd('.')).Append(". IN TXT (");
        for (var i = 0; i < recordText.Length; i += 255)
        {
            line.Append(i == 0 ? " \"" : "\n    \"").Append(recordText.AsSpan(i, Math.Min(255, recordText.Length - i))).Append('"');
        }

        return line.Append(" )").ToString();
    }
}
