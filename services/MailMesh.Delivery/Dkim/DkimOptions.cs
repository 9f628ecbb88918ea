using System.Globalization;
using MailMesh.ServiceDefaults;

namespace MailMesh.Delivery.Dkim;

/// <summary>
/// DKIM signing of outgoing mail (section "Dkim", RFC 6376): the keys by sender domain and selector. With no key,
/// nothing is signed and signing costs nothing. Every key file is loaded at start, so a bad one stops start-up with a
/// message naming its key.
/// </summary>
public sealed class DkimOptions : IValidatedOptions
{
    public static string SectionName => "Dkim";

    /// <summary>The signing keys (Dkim:Keys:n:Domain, :Selector, :KeyPath, :Algorithm, :Sign).</summary>
    public List<DkimKeyOptions> Keys { get; set; } = [];

    /// <summary>How often, at most, a key file's last-write time is looked at to re-read a replaced key.</summary>
    public TimeSpan KeyCheckInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>ARC sealing (RFC 8617) of mail MailMesh received and sends on (Dkim:Arc:*); off by default.</summary>
    public ArcSealOptions Arc { get; set; } = new();

    public IEnumerable<string> Validate()
    {
        var seen = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < Keys.Count; i++)
        {
            var key = Keys[i];
            var prefix = "Dkim:Keys:" + i.ToString(CultureInfo.InvariantCulture) + ":";
            var valid = true;
            if (!IsDomain(key.Domain))
            {
                valid = false;
                yield return prefix + $"Domain: '{key.Domain}' is not a domain name (ASCII, A-labels for IDNs)";
            }

            // RFC 6376 §3.1: a selector is one or more dot-separated sub-domain labels.
            if (!IsDomain(key.Selector))
            {
                valid = false;
                yield return prefix + $"Selector: '{key.Selector}' is not a selector (letters, digits, '-', dot-separated)";
            }

            if (!DkimPrivateKey.TryParseAlgorithm(key.Algorithm, out var algorithm))
            {
                valid = false;
                yield return prefix + $"Algorithm: '{key.Algorithm}' must be rsa-sha256 or ed25519-sha256";
            }

            if (valid && !seen.TryAdd(key.Selector + "._domainkey." + key.Domain, i))
            {
                yield return prefix + $"Selector: {key.Selector} for {key.Domain} is already Dkim:Keys:{seen[key.Selector + "._domainkey." + key.Domain]}";
            }

            if (string.IsNullOrWhiteSpace(key.KeyPath))
            {
                yield return prefix + "KeyPath: required (a PEM private key file)";
                continue;
            }

            if (LoadError(key.KeyPath, valid ? algorithm : null) is { } error)
            {
                yield return prefix + "KeyPath: " + error;
            }
        }

        if (KeyCheckInterval <= TimeSpan.Zero)
        {
            yield return "Dkim:KeyCheckInterval: must be positive";
        }

        foreach (var failure in Arc.Validate(Keys))
        {
            yield return failure;
        }
    }

    /// <summary>Why the file at <paramref name="path"/> cannot sign with <paramref name="algorithm"/>; null when it can.</summary>
    internal static string? LoadError(string path, DkimAlgorithm? algorithm)
    {
        DkimPrivateKey key;
        try
        {
            key = DkimPrivateKey.FromPem(File.ReadAllText(path));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException or NotSupportedException)
        {
            return $"cannot load '{path}': {ex.Message}";
        }

        using (key)
        {
            if (algorithm is { } expected && key.Algorithm != expected)
            {
                return $"'{path}' holds a {key.KeyType} key, which cannot sign {DkimPrivateKey.Name(expected)}";
            }

            // RFC 8301 §3.2: signers must use RSA keys of at least 1024 bits; 2048 is what receivers expect today.
            if (key.Algorithm == DkimAlgorithm.RsaSha256 && key.KeySize < 1024)
            {
                return $"'{path}' is a {key.KeySize}-bit RSA key; RFC 8301 requires at least 1024 (use 2048)";
            }
        }

        return null;
    }

    internal static bool IsDomain(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 253 || name.EndsWith('.'))
        {
            return false;
        }

        foreach (var label in name.Split('.'))
        {
            if (label.Length is 0 or > 63 || label[0] == '-' || label[^1] == '-')
            {
                return false;
            }

            foreach (var c in label)
            {
                if (!char.IsAsciiLetterOrDigit(c) && c != '-' && c != '_')
                {
                    return false;
                }
            }
        }

        return true;
    }
}

/// <summary>One DKIM key: the d= domain and s= selector it signs as, its PEM file and its algorithm.</summary>
public sealed class DkimKeyOptions
{
    /// <summary>The signing domain (d=): signs mail whose From domain is this domain or a sub-domain of it.</summary>
    public string? Domain { get; set; }

    /// <summary>The selector (s=): the key is published at Selector._domainkey.Domain.</summary>
    public string? Selector { get; set; }

    /// <summary>The PEM private key file (PKCS#8, or PKCS#1 for RSA); re-read when it changes.</summary>
    public string? KeyPath { get; set; }

    /// <summary>"rsa-sha256" (the default) or "ed25519-sha256".</summary>
    public string? Algorithm { get; set; } = "rsa-sha256";

    /// <summary>
    /// False keeps the key configured (and its record printable) without signing with it: a new selector being
    /// published, or an old one kept until its signatures age out. Of a domain's keys that sign, the last listed signs.
    /// </summary>
    public bool Sign { get; set; } = true;
}

/// <summary>
/// ARC sealing (RFC 8617, section "Dkim:Arc"): which configured Dkim:Keys entry seals, and the authserv-id whose
/// Authentication-Results field marks a message as received by MailMesh (so forwarded, not locally submitted).
/// </summary>
public sealed class ArcSealOptions
{
    /// <summary>Seal forwarded mail; false (the default) costs nothing.</summary>
    public bool Enabled { get; set; }

    /// <summary>The d= of the seal: with <see cref="Selector"/>, names the Dkim:Keys entry (an rsa-sha256 key) that seals.</summary>
    public string? Domain { get; set; }

    /// <summary>The s= of the seal.</summary>
    public string? Selector { get; set; }

    /// <summary>
    /// MailMesh's authserv-id in Authentication-Results (Policy's <c>Policy:AuthServId</c>); when empty,
    /// <c>Policy:AuthServId</c>, <c>Policy:Spf:AuthServId</c> or <c>Ingress:HostName</c> of the same configuration.
    /// </summary>
    public string? AuthServId { get; set; }

    internal IEnumerable<string> Validate(IReadOnlyList<DkimKeyOptions> keys)
    {
        if (!Enabled)
        {
            yield break;
        }

        if (!DkimOptions.IsDomain(Domain))
        {
            yield return $"Dkim:Arc:Domain: '{Domain}' is not a domain name (the d= of a Dkim:Keys entry)";
            yield break;
        }

        if (!DkimOptions.IsDomain(Selector))
        {
            yield return $"Dkim:Arc:Selector: '{Selector}' is not a selector";
            yield break;
        }

        var key = keys.FirstOrDefault(k =>
            string.Equals(k.Domain, Domain, StringComparison.OrdinalIgnoreCase) && string.Equals(k.Selector, Selector, StringComparison.OrdinalIgnoreCase));
        if (key is null)
        {
            yield return $"Dkim:Arc:Selector: no Dkim:Keys entry has Domain {Domain} and Selector {Selector}";
        }
        else if (!string.Equals(key.Algorithm, "rsa-sha256", StringComparison.OrdinalIgnoreCase))
        {
            // RFC 8617 §4.1.3: ARC signatures are rsa-sha256.
            yield return $"Dkim:Arc:Selector: the key {Selector} for {Domain} is {key.Algorithm}; ARC seals with rsa-sha256";
        }

        if (string.IsNullOrWhiteSpace(AuthServId) || AuthServId.Any(c => c <= ' ' || c > '~' || c is ';' or '(' or ')' or '"'))
        {
            yield return $"Dkim:Arc:AuthServId: '{AuthServId}' must be MailMesh's authserv-id (Policy:AuthServId), a token";
        }
    }
}
