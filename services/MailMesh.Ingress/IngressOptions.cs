using MailMesh.ServiceDefaults;
using MailMesh.Smtp;

namespace MailMesh.Ingress;

/// <summary>The SMTP listener and its protocol limits (section "Ingress"). Defaults follow RFC 5321 §4.5.3.</summary>
public sealed class IngressOptions : IValidatedOptions
{
    public static string SectionName => "Ingress";

    /// <summary>Comma-separated host:port endpoints, e.g. "127.0.0.1:2525,[::1]:2525,0.0.0.0:25". Port 0 picks a free port.</summary>
    public string Listen { get; set; } = "0.0.0.0:25";

    /// <summary>
    /// Optional submission listeners (RFC 6409, port 587 style): STARTTLS offered, and MAIL is refused with
    /// 530 5.7.0 until the client has authenticated. Empty: none.
    /// </summary>
    public string? SubmissionListen { get; set; }

    /// <summary>
    /// Optional implicit-TLS submission listeners (RFC 8314 §3, port 465 style): TLS from the first octet, AUTH
    /// required before MAIL as on <see cref="SubmissionListen"/>. Needs a certificate (Ingress:Tls). Empty: none.
    /// </summary>
    public string? ImplicitTlsListen { get; set; }

    /// <summary>SMTP connections open at once, over all listeners; beyond it new ones get 421 4.7.0 and are closed.</summary>
    public int MaxConnections { get; set; } = 2000;

    /// <summary>SMTP connections open at once from one client address (IPv6: per /64).</summary>
    public int MaxConnectionsPerIp { get; set; } = 50;

    /// <summary>
    /// The least average rate, in octets per second, at which message content (DATA or BDAT) must arrive once
    /// <see cref="MinDataRateGracePeriod"/> has passed; slower senders get 421 4.4.2 (as Kestrel's
    /// MinRequestBodyDataRate). 0 disables the check.
    /// </summary>
    public double MinDataRate { get; set; } = 240;

    /// <summary>The time message content may take before <see cref="MinDataRate"/> is enforced.</summary>
    public TimeSpan MinDataRateGracePeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long to wait, before sending the 220 greeting, for a client that talks first (an "early talker", RFC 5321
    /// §3.1 / RFC 2920; Postfix postscreen's greet wait). Input before the greeting gets 554 5.5.0 and a disconnect. 0:
    /// only input already buffered when the greeting is due is detected.
    /// </summary>
    public TimeSpan GreetWait { get; set; } = TimeSpan.Zero;

    /// <summary>The name in the greeting, EHLO reply and Received headers.</summary>
    public string HostName { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>RFC 1870 SIZE, in octets of content after dot-unstuffing (default 35 MiB).</summary>
    public long MaxMessageSize { get; set; } = 35 * 1024 * 1024;

    /// <summary>Recipients per transaction; RFC 5321 §4.5.3.1.8 requires at least 100.</summary>
    public int MaxRecipients { get; set; } = 1000;

    /// <summary>RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.</summary>
    public int MaxCommandLineLength { get; set; } = 512;

    /// <summary>
    /// The longest content line accepted in DATA, including CRLF. RFC 5321 §4.5.3.1.6 says a server must accept 1000;
    /// real mail (HTML one-liners, long base64 without folding) often exceeds that and Postfix accepts it, so MailMesh
    /// is lenient up to this hard cap (64 KiB) and refuses beyond with 554 5.6.0.
    /// </summary>
    public int MaxTextLineLength { get; set; } = 64 * 1024;

    /// <summary>RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command.</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>RFC 5321 §4.5.3.2.5 (client side: 3 minutes per data block): the longest wait for more content during DATA.</summary>
    public TimeSpan DataBlockTimeout { get; set; } = TimeSpan.FromMinutes(3);

    /// <summary>Protocol errors (5xx to a command) tolerated in one session before 421 4.7.0 and disconnect.</summary>
    public int MaxErrorsPerSession { get; set; } = 10;

    /// <summary>How long to wait for Policy's answer; past it the client gets 451 4.3.0 (never an acceptance).</summary>
    public TimeSpan PolicyTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the spool commit may take; past it the client gets 451 4.3.0.</summary>
    public TimeSpan SpoolTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The shortest time between two announcements of committed messages to Queue (issue 8): under load, what is committed
    /// in between goes out as one bus message. The first message after a quiet interval is announced at once, so this
    /// delays only mail that arrives close behind other mail, by this at most. 0 announces as fast as the broker confirms.
    /// </summary>
    public TimeSpan AnnounceInterval { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// False (default, strict): a bare CR or LF in DATA gets the message refused (554 5.6.0), the defence against SMTP
    /// smuggling. True: bare line endings are rewritten to CRLF and the message accepted; the end of data is still
    /// only CRLF.CRLF either way.
    /// </summary>
    public bool NormalizeBareLineFeeds { get; set; }

    /// <summary>
    /// On a graceful stop (SIGTERM): how long mail transactions in progress may run to their reply after the listeners
    /// have closed. Idle sessions are closed at once with 421 4.3.2; whatever is still open when this ends gets 421
    /// 4.3.2 too. The host's shutdown timeout is raised to this plus 10 seconds (bus and spool teardown) if it is
    /// shorter; a Kubernetes pod's terminationGracePeriodSeconds must cover that sum.
    /// </summary>
    public TimeSpan ShutdownGracePeriod { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// The process-wide budget, in octets, for message content held in memory while it arrives (SMTP DATA/BDAT and
    /// HTTP submission bodies, counted by buffer capacity). Buffers grow as octets arrive and are never sized from a
    /// client's declaration. When the budget is exhausted SMTP answers 452 4.3.1 (at MAIL when the declared SIZE does
    /// not fit, at DATA/BDAT, or at the end of a message that could not be held) and HTTP 503. The default (256 MiB)
    /// leaves room in the chart's 512 Mi Ingress limit for the runtime and connections; it must be at least twice the
    /// largest HTTP JSON body (<see cref="MaxMessageSize"/>, an eighth more for JSON escapes and 64 KiB), so a message of
    /// the largest size can be accepted over SMTP and HTTP (a buffer that grows holds its old and new array while it
    /// copies).
    /// </summary>
    public long MaxBufferedBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>
    /// An SMTP message that grows past this many octets moves from its memory buffer to a temporary file in
    /// <see cref="SpillDirectory"/> and is streamed from there into the spool, so it holds only a 64 KiB staging area
    /// of <see cref="MaxBufferedBytes"/> while the rest arrives. Default 1 MiB; between 64 KiB and 1 GiB.
    /// </summary>
    public long MemoryBodyThreshold { get; set; } = 1024 * 1024;

    /// <summary>
    /// Where bodies past <see cref="MemoryBodyThreshold"/> are written (files opened delete-on-close, removed when the
    /// message is committed, refused or the connection drops). Default: the system temporary directory. Created at
    /// start; must be writable.
    /// </summary>
    public string SpillDirectory { get; set; } = Path.GetTempPath();

    /// <summary>
    /// The process-wide limit, in octets, for message content in spill files at once; past it a message that would
    /// spill more is refused like an exhausted memory budget (452 4.3.1). Default 192 MiB, below the chart's 256Mi
    /// <c>/tmp</c> emptyDir (a pod that exceeds its emptyDir is evicted); raise both together.
    /// </summary>
    public long MaxSpilledBytes { get; set; } = 192L * 1024 * 1024;

    /// <summary>RFC 5321 §6.3: more Received headers than this (counting ours) is a loop, refused with 554 5.4.6.</summary>
    public int MaxReceivedHeaders { get; set; } = 50;

    public IEnumerable<string> Validate()
    {
        const string P = "Ingress:";
        if (!ListenEndpoints.TryParseList(Listen, out _, out var listenError))
        {
            yield return P + "Listen: " + listenError;
        }

        foreach (var (name, value) in new[] { ("SubmissionListen", SubmissionListen), ("ImplicitTlsListen", ImplicitTlsListen) })
        {
            if (!string.IsNullOrWhiteSpace(value) && !ListenEndpoints.TryParseList(value, out _, out var error))
            {
                yield return P + name + ": " + error;
            }
        }

        if (MaxConnections < 1)
        {
            yield return P + "MaxConnections: must be at least 1";
        }

        if (MaxConnectionsPerIp < 1)
        {
            yield return P + "MaxConnectionsPerIp: must be at least 1";
        }

        if (MinDataRate < 0 || double.IsNaN(MinDataRate))
        {
            yield return P + "MinDataRate: must not be negative (0 disables the check)";
        }

        if (MinDataRateGracePeriod <= TimeSpan.Zero || MinDataRateGracePeriod > TimeSpan.FromHours(1))
        {
            yield return P + "MinDataRateGracePeriod: must be positive and at most 1 hour";
        }

        if (ShutdownGracePeriod < TimeSpan.Zero || ShutdownGracePeriod > TimeSpan.FromHours(1))
        {
            yield return P + "ShutdownGracePeriod: must be between 0 and 1 hour";
        }

        if (GreetWait < TimeSpan.Zero || GreetWait > TimeSpan.FromMinutes(1))
        {
            yield return P + "GreetWait: must be between 0 and 1 minute";
        }

        if (string.IsNullOrWhiteSpace(HostName) || !(Mailbox.IsValidDomain(HostName) || Mailbox.IsValidAddressLiteral(HostName, out _)))
        {
            yield return $"{P}HostName: '{HostName}' is not a domain name";
        }

        if (MaxMessageSize < 1024)
        {
            yield return P + "MaxMessageSize: must be at least 1024 octets";
        }

        if (MaxMessageSize > int.MaxValue - (64 * 1024))
        {
            // The message is held in one contiguous buffer until it is committed.
            yield return P + "MaxMessageSize: must be below 2 GiB";
        }

        if (MaxBufferedBytes < 2 * Http.SubmissionHandler.JsonBodyLimit(MaxMessageSize))
        {
            yield return P + "MaxBufferedBytes: must be at least twice the largest JSON submission (Ingress:MaxMessageSize, an eighth more and 64 KiB), so a message of the largest size fits while its buffer grows";
        }

        if (MemoryBodyThreshold is < 64 * 1024 or > 1024L * 1024 * 1024)
        {
            yield return P + "MemoryBodyThreshold: must be between 64 KiB and 1 GiB";
        }

        if (MaxSpilledBytes < 0)
        {
            yield return P + "MaxSpilledBytes: must not be negative";
        }

        if (WritableDirectory.Check(SpillDirectory) is { } spillError)
        {
            yield return P + "SpillDirectory: " + spillError;
        }

        if (MaxRecipients < 100)
        {
            yield return P + "MaxRecipients: must be at least 100 (RFC 5321 §4.5.3.1.8)";
        }

        if (MaxCommandLineLength is < 512 or > 64 * 1024)
        {
            yield return P + "MaxCommandLineLength: must be between 512 (RFC 5321 §4.5.3.1.4) and 65536";
        }

        if (MaxTextLineLength is < 1000 or > 1024 * 1024)
        {
            yield return P + "MaxTextLineLength: must be between 1000 (RFC 5321 §4.5.3.1.6) and 1048576";
        }

        foreach (var (name, value) in new[] { ("CommandTimeout", CommandTimeout), ("DataBlockTimeout", DataBlockTimeout), ("PolicyTimeout", PolicyTimeout), ("SpoolTimeout", SpoolTimeout) })
        {
            if (value <= TimeSpan.Zero || value > TimeSpan.FromHours(1))
            {
                yield return $"{P}{name}: must be positive and at most 1 hour";
            }
        }

        if (AnnounceInterval < TimeSpan.Zero || AnnounceInterval > TimeSpan.FromSeconds(1))
        {
            yield return P + "AnnounceInterval: must be between 0 and 1 second";
        }

        if (MaxErrorsPerSession < 1)
        {
            yield return P + "MaxErrorsPerSession: must be at least 1";
        }

        if (MaxReceivedHeaders < 1)
        {
            yield return P + "MaxReceivedHeaders: must be at least 1";
        }
    }
}
