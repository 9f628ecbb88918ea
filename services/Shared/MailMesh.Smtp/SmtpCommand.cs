namespace MailMesh.Smtp;

public enum SmtpCommandKind
{
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
    Bdat,
}

/// <summary>One ESMTP parameter of MAIL or RCPT (RFC 5321 §4.1.2 esmtp-param = esmtp-keyword ["=" esmtp-value]).</summary>
public readonly record struct EsmtpParameter(string Keyword, string? Value);

/// <summary>A syntactically valid command. What it means in the session is decided by <see cref="SmtpStateTable"/> and the server.</summary>
public sealed class SmtpCommand
{
    internal SmtpCommand(SmtpCommandKind kind, string argument)
    {
        Kind = kind;
        Argument = argument;
    }

    public SmtpCommandKind Kind { get; }

    /// <summary>The text after the verb (and for MAIL/RCPT after "FROM:"/"TO:"), trimmed.</summary>
    public string Argument { get; }

    /// <summary>HELO/EHLO: the client's domain or address literal.</summary>
    public string? ClientName { get; internal init; }

    /// <summary>MAIL/RCPT: the mailbox; null for the null reverse path or for &lt;Postmaster&gt;.</summary>
    public Mailbox? Mailbox { get; internal init; }

    /// <summary>MAIL: the null reverse path "&lt;&gt;" (bounces, RFC 5321 §4.5.5).</summary>
    public bool IsNullPath { get; internal init; }

    /// <summary>RCPT TO:&lt;Postmaster&gt; without a domain, which every server must accept (RFC 5321 §4.1.1.3).</summary>
    public bool IsPostmaster { get; internal init; }

    /// <summary>BDAT: the chunk-size, the exact number of octets that follow the command line (RFC 3030 §2).</summary>
    public long ChunkSize { get; internal init; }

    /// <summary>BDAT: the LAST end-marker was given.</summary>
    public bool IsLastChunk { get; internal init; }

    /// <summary>MAIL/RCPT parameters in the order given.</summary>
    public IReadOnlyList<EsmtpParameter> Parameters { get; internal init; } = [];

    public override string ToString() => Kind + " " + Argument;
}
