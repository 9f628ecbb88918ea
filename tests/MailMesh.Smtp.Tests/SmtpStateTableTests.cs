namespace MailMesh.Smtp.Tests;

public sealed class SmtpStateTableTests
{
    // The expected table, written out: which commands are legal in which state (RFC 5321 §4.1.4).
    private static readonly Dictionary<SmtpState, SmtpCommandKind[]> Legal = new()
    {
        [SmtpState.Connected] =
        [
            SmtpCommandKind.Helo, SmtpCommandKind.Ehlo, SmtpCommandKind.Rset, SmtpCommandKind.Noop, SmtpCommandKind.Quit,
            SmtpCommandKind.Vrfy, SmtpCommandKind.Expn, SmtpCommandKind.Help,
        ],
        [SmtpState.Greeted] =
        [
            SmtpCommandKind.Helo, SmtpCommandKind.Ehlo, SmtpCommandKind.Rset, SmtpCommandKind.Noop, SmtpCommandKind.Quit,
            SmtpCommandKind.Vrfy, SmtpCommandKind.Expn, SmtpCommandKind.Help, SmtpCommandKind.Mail, SmtpCommandKind.StartTls,
            SmtpCommandKind.Auth,
        ],
        [SmtpState.MailGiven] =
        [
            SmtpCommandKind.Helo, SmtpCommandKind.Ehlo, SmtpCommandKind.Rset, SmtpCommandKind.Noop, SmtpCommandKind.Quit,
            SmtpCommandKind.Vrfy, SmtpCommandKind.Expn, SmtpCommandKind.Help, SmtpCommandKind.Rcpt,
        ],
        [SmtpState.RcptGiven] =
        [
            SmtpCommandKind.Helo, SmtpCommandKind.Ehlo, SmtpCommandKind.Rset, SmtpCommandKind.Noop, SmtpCommandKind.Quit,
            SmtpCommandKind.Vrfy, SmtpCommandKind.Expn, SmtpCommandKind.Help, SmtpCommandKind.Rcpt, SmtpCommandKind.Data,
            SmtpCommandKind.Bdat,
        ],
        [SmtpState.Data] = [],

        // RFC 3030 §3: between BDAT chunks only more BDAT continues the transaction.
        [SmtpState.Chunking] =
        [
            SmtpCommandKind.Helo, SmtpCommandKind.Ehlo, SmtpCommandKind.Rset, SmtpCommandKind.Noop, SmtpCommandKind.Quit,
            SmtpCommandKind.Vrfy, SmtpCommandKind.Expn, SmtpCommandKind.Help, SmtpCommandKind.Bdat,
        ],
    };

    public static TheoryData<SmtpState, SmtpCommandKind> AllPairs()
    {
        var data = new TheoryData<SmtpState, SmtpCommandKind>();
        foreach (var state in Enum.GetValues<SmtpState>())
        {
            foreach (var command in Enum.GetValues<SmtpCommandKind>())
            {
                data.Add(state, command);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(AllPairs))]
    public void Table_matches_RFC_5321(SmtpState state, SmtpCommandKind command)
    {
        var legal = Legal[state].Contains(command);
        Assert.Equal(legal, SmtpStateTable.IsAllowed(state, command));
        var reply = SmtpStateTable.Check(state, command);
        if (legal)
        {
            Assert.Null(reply);
        }
        else
        {
            Assert.NotNull(reply);
            if (state == SmtpState.MailGiven && command is SmtpCommandKind.Data or SmtpCommandKind.Bdat)
            {
                // RFC 2920 §3.1: DATA after every RCPT failed is "no valid recipients".
                Assert.Equal(554, reply.Code);
            }
            else
            {
                Assert.Equal(503, reply.Code);
                Assert.Equal("5.5.1", reply.EnhancedCode);
            }
        }
    }
}
