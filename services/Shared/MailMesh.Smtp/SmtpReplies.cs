namespace MailMesh.Smtp;

/// <summary>The fixed replies of the protocol, allocated once.</summary>
public static class SmtpReplies
{
    public static SmtpReply Ok { get; } = new(250, EnhancedStatusCodes.Ok, "Ok");

    public static SmtpReply SenderOk { get; } = new(250, EnhancedStatusCodes.SenderOk, "Ok");

    public static SmtpReply RecipientOk { get; } = new(250, EnhancedStatusCodes.RecipientOk, "Ok");

    /// <summary>RFC 5321 §4.1.1.4: the intermediate reply to DATA.</summary>
    public static SmtpReply StartMailInput { get; } = new(354, null, "End data with <CR><LF>.<CR><LF>");

    /// <summary>RFC 5321 §3.5.3: a server that does not verify answers 252.</summary>
    public static SmtpReply CannotVerify { get; } = new(252, EnhancedStatusCodes.ProtocolOk, "Cannot VRFY user, but will accept message and attempt delivery");

    public static SmtpReply Help { get; } = new(214, EnhancedStatusCodes.ProtocolOk, "See RFC 5321: https://www.rfc-editor.org/rfc/rfc5321");

    /// <summary>RFC 5321 §4.3.2 / RFC 3463: the one "bad sequence" reply, produced only by <see cref="SmtpStateTable"/>.</summary>
    public static SmtpReply BadSequence { get; } = new(503, EnhancedStatusCodes.InvalidCommand, "Bad sequence of commands");

    public static SmtpReply NeedHelo { get; } = new(503, EnhancedStatusCodes.InvalidCommand, "Bad sequence of commands: send HELO/EHLO first");

    public static SmtpReply NeedMail { get; } = new(503, EnhancedStatusCodes.InvalidCommand, "Bad sequence of commands: need MAIL before RCPT");

    public static SmtpReply NestedMail { get; } = new(503, EnhancedStatusCodes.InvalidCommand, "Bad sequence of commands: nested MAIL command");

    /// <summary>RFC 5321 §3.3 / RFC 2920 §3.1: DATA after MAIL whose every RCPT was refused.</summary>
    public static SmtpReply NoValidRecipients { get; } = new(554, EnhancedStatusCodes.InvalidCommand, "No valid recipients");

    public static SmtpReply UnknownCommand { get; } = new(500, EnhancedStatusCodes.InvalidCommand, "Command unrecognized");

    public static SmtpReply NotImplemented { get; } = new(502, EnhancedStatusCodes.InvalidCommand, "Command not implemented");

    /// <summary>RFC 5321 §4.5.3.1.4: a command line longer than the limit.</summary>
    public static SmtpReply LineTooLong { get; } = new(500, EnhancedStatusCodes.SyntaxError, "Line too long");

    /// <summary>RFC 5321 §2.3.8: lines end in CRLF only.</summary>
    public static SmtpReply BareLineEnding { get; } = new(500, EnhancedStatusCodes.SyntaxError, "Bare CR or LF not allowed; lines end in CRLF");

    /// <summary>RFC 5321 §2.3.8 applied to the content: the end-of-data smuggling defence.</summary>
    public static SmtpReply BareLineEndingInData { get; } = new(554, EnhancedStatusCodes.MediaError, "Bare CR or LF not allowed in message content");

    public static SmtpReply DataLineTooLong { get; } = new(554, EnhancedStatusCodes.MediaError, "Message line too long");

    /// <summary>RFC 1870 §6: the message exceeds the fixed maximum message size.</summary>
    public static SmtpReply MessageTooBig { get; } = new(552, EnhancedStatusCodes.MessageTooBig, "Message size exceeds fixed maximum message size");

    /// <summary>RFC 5321 §4.5.3.1.10.</summary>
    public static SmtpReply TooManyRecipients { get; } = new(452, EnhancedStatusCodes.TooManyRecipients, "Too many recipients");

    /// <summary>RFC 5321 §6.3: too many Received headers.</summary>
    public static SmtpReply RoutingLoop { get; } = new(554, EnhancedStatusCodes.RoutingLoop, "Too many hops: routing loop detected");

    /// <summary>A dependency (policy, spool) failed or timed out: never accept, ask the client to retry.</summary>
    public static SmtpReply TemporaryFailure { get; } = new(451, EnhancedStatusCodes.TransientSystemError, "Temporary failure, please try again later");

    public static SmtpReply SyntaxHelo { get; } = new(501, EnhancedStatusCodes.InvalidArguments, "Syntax: HELO hostname");

    public static SmtpReply SyntaxEhlo { get; } = new(501, EnhancedStatusCodes.InvalidArguments, "Syntax: EHLO hostname");

    public static SmtpReply SyntaxMail { get; } = new(501, EnhancedStatusCodes.InvalidArguments, "Syntax: MAIL FROM:<address>");

    public static SmtpReply SyntaxRcpt { get; } = new(501, EnhancedStatusCodes.InvalidArguments, "Syntax: RCPT TO:<address>");

    public static SmtpReply SyntaxVrfy { get; } = new(501, EnhancedStatusCodes.InvalidArguments, "Syntax: VRFY address");

    public static SmtpReply SyntaxNoArguments { get; } = new(501, EnhancedStatusCodes.InvalidArguments, "Syntax error: no arguments allowed");

    public static SmtpReply SyntaxParameters { get; } = new(501, EnhancedStatusCodes.InvalidArguments, "Syntax error in parameters");

    public static SmtpReply BadCharacters { get; } = new(501, EnhancedStatusCodes.SyntaxError, "Syntax error: invalid characters in command");

    public static SmtpReply BadSenderAddress { get; } = new(501, EnhancedStatusCodes.BadSenderSyntax, "Bad sender address syntax");

    public static SmtpReply BadRecipientAddress { get; } = new(501, EnhancedStatusCodes.BadRecipientSyntax, "Bad recipient address syntax");

    public static SmtpReply SenderSourceRoute { get; } = new(501, EnhancedStatusCodes.BadSenderSyntax, "Source routes are not accepted");

    public static SmtpReply RecipientSourceRoute { get; } = new(501, EnhancedStatusCodes.BadRecipientSyntax, "Source routes are not accepted");

    public static SmtpReply SenderTooLong { get; } = new(501, EnhancedStatusCodes.BadSenderSyntax, "Sender address too long");

    public static SmtpReply RecipientTooLong { get; } = new(501, EnhancedStatusCodes.BadRecipientSyntax, "Recipient address too long");

    public static SmtpReply NullRecipient { get; } = new(501, EnhancedStatusCodes.BadRecipientSyntax, "Null recipient not allowed");

    public static SmtpReply UnknownParameter { get; } = new(555, EnhancedStatusCodes.InvalidArguments, "Unsupported MAIL/RCPT parameter");

    public static SmtpReply BadSizeParameter { get; } = new(501, EnhancedStatusCodes.InvalidArguments, "Bad SIZE parameter");

    public static SmtpReply BadBodyParameter { get; } = new(501, EnhancedStatusCodes.InvalidArguments, "Bad BODY parameter");

    public static SmtpReply BinaryMimeUnsupported { get; } = new(555, EnhancedStatusCodes.InvalidArguments, "BODY=BINARYMIME requires CHUNKING, which is not offered");

    public static SmtpReply DuplicateParameter { get; } = new(501, EnhancedStatusCodes.InvalidArguments, "Duplicate MAIL/RCPT parameter");

    public static SmtpReply Closing(string hostName) => new(221, EnhancedStatusCodes.Ok, hostName + " closing connection");

    public static SmtpReply ServiceNotAvailable(string hostName, string enhancedCode, string text) => new(421, enhancedCode, hostName + " " + text);
}
