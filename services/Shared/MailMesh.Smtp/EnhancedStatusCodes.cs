namespace MailMesh.Smtp;

/// <summary>RFC 3463 enhanced mail system status codes used in MailMesh replies (RFC 2034 ENHANCEDSTATUSCODES).</summary>
public static class EnhancedStatusCodes
{
    /// <summary>2.0.0 Other undefined status: generic success.</summary>
    public const string Ok = "2.0.0";

    /// <summary>2.1.0 Other address status: the sender was accepted.</summary>
    public const string SenderOk = "2.1.0";

    /// <summary>2.1.5 Destination address valid.</summary>
    public const string RecipientOk = "2.1.5";

    /// <summary>2.5.0 Other or undefined protocol status (VRFY 252, HELP).</summary>
    public const string ProtocolOk = "2.5.0";

    /// <summary>4.3.0 Other or undefined mail system status: a dependency (policy, spool) failed; try again.</summary>
    public const string TransientSystemError = "4.3.0";

    /// <summary>4.3.2 System not accepting network messages (shutting down).</summary>
    public const string SystemNotAccepting = "4.3.2";

    /// <summary>4.4.2 Bad connection: the client was idle beyond the timeout.</summary>
    public const string Timeout = "4.4.2";

    /// <summary>4.5.3 Too many recipients (RFC 5321 §4.5.3.1.10: 452, the client retries the rest later).</summary>
    public const string TooManyRecipients = "4.5.3";

    /// <summary>4.7.0 Other or undefined security status (too many errors).</summary>
    public const string TransientSecurity = "4.7.0";

    /// <summary>5.1.3 Bad destination mailbox address syntax.</summary>
    public const string BadRecipientSyntax = "5.1.3";

    /// <summary>5.1.7 Bad sender's mailbox address syntax.</summary>
    public const string BadSenderSyntax = "5.1.7";

    /// <summary>5.3.4 Message too big for system.</summary>
    public const string MessageTooBig = "5.3.4";

    /// <summary>5.4.6 Routing loop detected (RFC 5321 §6.3).</summary>
    public const string RoutingLoop = "5.4.6";

    /// <summary>5.5.1 Invalid command (unknown, out of sequence, not implemented).</summary>
    public const string InvalidCommand = "5.5.1";

    /// <summary>5.5.2 Syntax error (line too long, bare CR or LF).</summary>
    public const string SyntaxError = "5.5.2";

    /// <summary>5.5.4 Invalid command arguments.</summary>
    public const string InvalidArguments = "5.5.4";

    /// <summary>5.6.0 Other or undefined media error (bare CR/LF in the content, overlong content lines).</summary>
    public const string MediaError = "5.6.0";

    /// <summary>5.7.1 Delivery not authorized, message refused (relay denied).</summary>
    public const string NotAuthorized = "5.7.1";
}
