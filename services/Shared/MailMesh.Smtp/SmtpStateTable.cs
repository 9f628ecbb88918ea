namespace MailMesh.Smtp;

/// <summary>Where an SMTP server session is (RFC 5321 §4.1.4 command ordering).</summary>
public enum SmtpState
{
    /// <summary>After the 220 greeting, before HELO/EHLO.</summary>
    Connected,

    /// <summary>After HELO/EHLO, RSET or a finished transaction: no mail transaction.</summary>
    Greeted,

    /// <summary>MAIL accepted, no recipient accepted yet.</summary>
    MailGiven,

    /// <summary>At least one RCPT accepted.</summary>
    RcptGiven,

    /// <summary>Reading the message after 354: no command is a command.</summary>
    Data,

    /// <summary>RFC 3030: at least one BDAT chunk received, the transaction not ended by BDAT LAST.</summary>
    Chunking,
}

/// <summary>
/// The one table of which commands are legal in which state (RFC 5321 §4.1.4, §3.3). Every "bad sequence" reply of
/// the server comes from <see cref="Check"/>, nowhere else.
/// </summary>
public static class SmtpStateTable
{
    private const int StateCount = (int)SmtpState.Chunking + 1;
    private const int CommandCount = (int)SmtpCommandKind.Bdat + 1;

    // null = legal; otherwise the reply for using the command in that state.
    private static readonly SmtpReply?[,] Table = Build();

    /// <summary>True when <paramref name="command"/> may be given in <paramref name="state"/>.</summary>
    public static bool IsAllowed(SmtpState state, SmtpCommandKind command) => Table[(int)state, (int)command] is null;

    /// <summary>Returns null when the command is legal in the state, else the reply to give (503 5.5.1, or 554 for DATA without recipients).</summary>
    public static SmtpReply? Check(SmtpState state, SmtpCommandKind command) => Table[(int)state, (int)command];

    private static SmtpReply?[,] Build()
    {
        var table = new SmtpReply?[StateCount, CommandCount];
        for (var s = 0; s < StateCount; s++)
        {
            for (var c = 0; c < CommandCount; c++)
            {
                table[s, c] = Rule((SmtpState)s, (SmtpCommandKind)c);
            }
        }

        return table;
    }

    private static SmtpReply? Rule(SmtpState state, SmtpCommandKind command) => (state, command) switch
    {
        // In DATA the server reads content, not commands; a caller asking is a bug in the caller.
        (SmtpState.Data, _) => SmtpReplies.BadSequence,

        // §4.1.4: these may be issued at any time (EHLO/HELO and RSET also abort a transaction).
        (_, SmtpCommandKind.Helo or SmtpCommandKind.Ehlo or SmtpCommandKind.Rset or SmtpCommandKind.Noop
            or SmtpCommandKind.Quit or SmtpCommandKind.Vrfy or SmtpCommandKind.Expn or SmtpCommandKind.Help) => null,

        // §4.1.4: MAIL, STARTTLS and AUTH need a greeting and no transaction in progress.
        (SmtpState.Connected, SmtpCommandKind.Mail or SmtpCommandKind.StartTls or SmtpCommandKind.Auth) => SmtpReplies.NeedHelo,
        (SmtpState.Greeted, SmtpCommandKind.Mail or SmtpCommandKind.StartTls or SmtpCommandKind.Auth) => null,
        (_, SmtpCommandKind.Mail) => SmtpReplies.NestedMail,
        (_, SmtpCommandKind.StartTls or SmtpCommandKind.Auth) => SmtpReplies.BadSequence,

        // RFC 3030 §3: after a BDAT chunk only further BDAT (or RSET, EHLO, QUIT, NOOP...) continues; RCPT, DATA
        // and another MAIL are out of sequence.
        (SmtpState.Chunking, SmtpCommandKind.Bdat) => null,
        (SmtpState.Chunking, _) => SmtpReplies.BadSequence,

        // RCPT after MAIL.
        (SmtpState.MailGiven or SmtpState.RcptGiven, SmtpCommandKind.Rcpt) => null,
        (SmtpState.Connected, SmtpCommandKind.Rcpt) => SmtpReplies.NeedHelo,
        (_, SmtpCommandKind.Rcpt) => SmtpReplies.NeedMail,

        // DATA and BDAT after at least one accepted RCPT; §3.3 and RFC 2920 §3.1: with none, 554 "no valid recipients".
        (SmtpState.RcptGiven, SmtpCommandKind.Data or SmtpCommandKind.Bdat) => null,
        (SmtpState.MailGiven, SmtpCommandKind.Data or SmtpCommandKind.Bdat) => SmtpReplies.NoValidRecipients,
        (SmtpState.Connected, SmtpCommandKind.Data or SmtpCommandKind.Bdat) => SmtpReplies.NeedHelo,
        (_, SmtpCommandKind.Data or SmtpCommandKind.Bdat) => SmtpReplies.BadSequence,

        _ => SmtpReplies.BadSequence,
    };
}
