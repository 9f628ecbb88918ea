using System.Globalization;
using MailMesh.Policy.Spf;
using MailMesh.ServiceDefaults;

namespace MailMesh.Policy.Dkim;

/// <summary>DKIM verification of inbound mail (section "Policy:Dkim", RFC 6376), reported in Authentication-Results.</summary>
public sealed class DkimVerifyOptions : IValidatedOptions
{
    public static string SectionName => "Policy:Dkim";

    /// <summary>
    /// Verify the DKIM signatures of mail from clients that are neither relay clients nor authenticated. Default false:
    /// it costs a DNS lookup per signing domain and selector and a hash of the body; DMARC (Policy:Dmarc:Enabled)
    /// verifies DKIM whatever this says, since its result depends on it.
    /// </summary>
    public bool Enabled { get; set; }

    /// <summary>Signatures verified per message (the first ones, top down); the rest are not looked at. Default 5.</summary>
    public int MaxSignatures { get; set; } = 5;

    /// <summary>Bound on each DNS query of inbound authentication (DKIM keys, DMARC records). Default 5 seconds.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>RSA keys shorter than this fail (RFC 8301 §3.2: at least 1024). Default 1024.</summary>
    public int MinimumRsaKeyBits { get; set; } = 1024;

    /// <summary>
    /// Comma-separated resolvers for DKIM, ARC and DMARC lookups ("ip" or "ip:port"). Empty: Policy:Spf:DnsServers,
    /// then Dns:Servers, then the system's resolvers.
    /// </summary>
    public string? DnsServers { get; set; }

    public IEnumerable<string> Validate()
    {
        if (MaxSignatures is < 1 or > 50)
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{SectionName}:{nameof(MaxSignatures)}: must be between 1 and 50 (was {MaxSignatures})");
        }

        if (Timeout <= TimeSpan.Zero || Timeout > TimeSpan.FromMinutes(1))
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{SectionName}:{nameof(Timeout)}: must be positive and at most 1 minute (was {Timeout})");
        }

        if (MinimumRsaKeyBits is < 512 or > 8192)
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"{SectionName}:{nameof(MinimumRsaKeyBits)}: must be between 512 and 8192 (was {MinimumRsaKeyBits})");
        }

        string? error = null;
        try
        {
            _ = SpfOptions.ParseServers(DnsServers, $"{SectionName}:{nameof(DnsServers)}");
        }
        catch (FormatException ex)
        {
            error = ex.Message;
        }

        if (error is not null)
        {
            yield return error;
        }
    }
}

/// <summary>ARC verification of inbound mail (section "Policy:Arc", RFC 8617), reported as arc= in Authentication-Results.</summary>
public sealed class ArcVerifyOptions : IValidatedOptions
{
    public static string SectionName => "Policy:Arc";

    /// <summary>Verify the ARC chain of mail from strangers (not relay clients, not authenticated). Default false. The
    /// result is reported only; it never refuses or overrides DMARC.</summary>
    public bool Enabled { get; set; }

    public IEnumerable<string> Validate() => [];
}
