using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using MailMesh.ServiceDefaults.Tls;

namespace MailMesh.Mailbox.Protocols;

/// <summary>
/// The POP3 and IMAP listeners and their protocol limits (section "Mailbox"). Defaults follow the RFCs (RFC 1939 §3:
/// a POP3 autologout timer of at least 10 minutes; RFC 9051 §5.4: an IMAP inactivity timer of at least 30 minutes) and
/// Dovecot's (64 KiB IMAP command lines).
/// </summary>
public sealed class MailboxProtocolOptions : IValidatedOptions
{
    public static string SectionName => "Mailbox";

    /// <summary>Comma-separated host:port POP3 endpoints with STLS (RFC 2595); empty: none. Standalone: 127.0.0.1:1110.</summary>
    public string? Pop3Listen { get; set; } = "0.0.0.0:110";

    /// <summary>POP3 endpoints with implicit TLS (RFC 8314, port 995 style); empty: none.</summary>
    public string? Pop3sListen { get; set; }

    /// <summary>Comma-separated host:port IMAP endpoints with STARTTLS; empty: none. Standalone: 127.0.0.1:1143.</summary>
    public string? ImapListen { get; set; } = "0.0.0.0:143";

    /// <summary>IMAP endpoints with implicit TLS (RFC 8314, port 993 style); empty: none.</summary>
    public string? ImapsListen { get; set; }

    /// <summary>The name in greetings and of the self-signed certificate.</summary>
    public string HostName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>Allow USER/PASS, LOGIN and AUTHENTICATE PLAIN without TLS (RFC 2595 §2.2, RFC 9051 §6.2.3 advise against it).</summary>
    public bool AllowPlaintextAuth { get; set; }

    /// <summary>How long a connection may stay unauthenticated.</summary>
    public TimeSpan LoginTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>RFC 1939 §3: the POP3 autologout timer, at least 10 minutes.</summary>
    public TimeSpan Pop3IdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>RFC 9051 §5.4: the IMAP inactivity timer, at least 30 minutes (IDLE included: clients re-issue it every 29).</summary>
    public TimeSpan ImapIdleTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>The longest IMAP command line in octets (Dovecot's imap_max_line_length).</summary>
    public int ImapMaxLineLength { get; set; } = 65536;

    /// <summary>The largest IMAP command in octets, inline literals included (APPEND's message excepted).</summary>
    public int ImapMaxCommandSize { get; set; } = 262144;

    /// <summary>The largest message APPEND accepts, in octets (as Ingress:MaxMessageSize: 35 MiB).</summary>
    public long MaxMessageSize { get; set; } = 35 * 1024 * 1024;

    /// <summary>
    /// Where APPEND writes a message literal as it arrives (an unlinked file, stored from a memory map of it), so no
    /// session holds a message whole on the heap; the directory local delivery uses for its copies (the same key).
    /// </summary>
    public string ContentDirectory { get; set; } = Path.Combine(Path.GetTempPath(), "mailmesh-mailbox");

    /// <summary>Bad commands (syntax errors, unknown commands) a session may send before it is closed.</summary>
    public int MaxBadCommands { get; set; } = 20;

    /// <summary>Connections open at once over all POP3 and IMAP listeners; beyond it new ones are refused.</summary>
    public int MaxConnections { get; set; } = 5000;

    public IEnumerable<string> Validate()
    {
        const string P = "Mailbox:";
        foreach (var (key, value) in new[] { ("Pop3Listen", Pop3Listen), ("Pop3sListen", Pop3sListen), ("ImapListen", ImapListen), ("ImapsListen", ImapsListen) })
        {
            if (!string.IsNullOrWhiteSpace(value) && !ListenEndpoints.TryParseList(value, out _, out var error))
            {
                yield return $"{P}{key}: {error}";
            }
        }

        if (string.IsNullOrWhiteSpace(HostName))
        {
            yield return P + "HostName: must not be empty";
        }

        if (LoginTimeout <= TimeSpan.Zero || LoginTimeout > TimeSpan.FromHours(1))
        {
            yield return P + "LoginTimeout: must be positive and at most 1 hour";
        }

        if (Pop3IdleTimeout < TimeSpan.FromMinutes(10) || Pop3IdleTimeout > TimeSpan.FromDays(1))
        {
            yield return P + "Pop3IdleTimeout: must be at least 10 minutes (RFC 1939 §3) and at most 1 day";
        }

        if (ImapIdleTimeout < TimeSpan.FromMinutes(30) || ImapIdleTimeout > TimeSpan.FromDays(1))
        {
            yield return P + "ImapIdleTimeout: must be at least 30 minutes (RFC 9051 §5.4) and at most 1 day";
        }

        if (ImapMaxLineLength is < 1000 or > 16 * 1024 * 1024)
        {
            yield return P + "ImapMaxLineLength: must be between 1000 and 16777216";
        }

        if (ImapMaxCommandSize < ImapMaxLineLength || ImapMaxCommandSize > 64 * 1024 * 1024)
        {
            yield return P + "ImapMaxCommandSize: must be at least ImapMaxLineLength and at most 67108864";
        }

        if (MaxMessageSize is < 1024 or > 1024L * 1024 * 1024)
        {
            yield return P + "MaxMessageSize: must be between 1024 and 1073741824";
        }

        if (WritableDirectory.Check(ContentDirectory) is { } contentDirectoryError)
        {
            yield return $"{P}{nameof(ContentDirectory)}: {contentDirectoryError}";
        }

        if (MaxBadCommands < 1)
        {
            yield return P + "MaxBadCommands: must be at least 1";
        }

        if (MaxConnections < 1)
        {
            yield return P + "MaxConnections: must be at least 1";
        }
    }
}

/// <summary>The certificate for STLS, STARTTLS, POP3S and IMAPS (section "Mailbox:Tls"; the keys of "Ingress:Tls").</summary>
public sealed class MailboxTlsOptions : IValidatedOptions, ITlsCertificateSettings
{
    public static string SectionName => "Mailbox:Tls";

    public string? CertificatePath { get; set; }

    public string? KeyPath { get; set; }

    public bool SelfSigned { get; set; }

    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public IEnumerable<string> Validate() => ITlsCertificateSettings.Validate(this, SectionName);
}

/// <summary>The login throttle of POP3 and IMAP (section "Mailbox:Auth"; the keys and defaults of "Ingress:Auth").</summary>
public sealed class MailboxAuthOptions : IValidatedOptions, IAuthThrottleSettings
{
    public static string SectionName => "Mailbox:Auth";

    public int MaxFailures { get; set; } = 5;

    public TimeSpan FailureWindow { get; set; } = TimeSpan.FromMinutes(15);

    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(15);

    public TimeSpan FailureDelay { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxFailureDelay { get; set; } = TimeSpan.FromSeconds(16);

    public IEnumerable<string> Validate() => IAuthThrottleSettings.Validate(this, SectionName);
}
