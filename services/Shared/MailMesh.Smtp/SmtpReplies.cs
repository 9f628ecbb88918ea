using System.Globalization;

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

    /// <summary>RFC 3461 §4: a malformed DSN parameter.</summary>
    public static SmtpReply BadDsnParameter(string keyword) => new(501, EnhancedStatusCodes.InvalidArguments, "Bad " + keyword + " parameter");

    /// <summary>RFC 3207 §4: the reply to STARTTLS before the handshake.</summary>
    public static SmtpReply ReadyToStartTls { get; } = new(220, EnhancedStatusCodes.Ok, "Ready to start TLS");

    /// <summary>RFC 3207 §4: TLS is not available (no certificate) at the moment.</summary>
    public static SmtpReply TlsNotAvailable { get; } = new(454, EnhancedStatusCodes.TransientSecurity, "TLS not available due to temporary reason");

    /// <summary>RFC 4954 §6: the submission listener requires AUTH before MAIL.</summary>
    public static SmtpReply AuthenticationRequired { get; } = new(530, "5.7.0", "Authentication required");

    /// <summary>RFC 3207 §4 / RFC 4954 §4: AUTH over a clear channel when the server requires TLS for it.</summary>
    public static SmtpReply EncryptionRequired { get; } = new(538, "5.7.11", "Encryption required for requested authentication mechanism");

    /// <summary>RFC 4954 §6.</summary>
    public static SmtpReply AuthenticationSucceeded { get; } = new(235, "2.7.0", "Authentication successful");

    /// <summary>RFC 4954 §6.</summary>
    public static SmtpReply AuthenticationFailed { get; } = new(535, "5.7.8", "Authentication credentials invalid");

    /// <summary>RFC 4954 §6: temporary failure (also: too many failures, try later).</summary>
    public static SmtpReply AuthenticationTemporaryFailure { get; } = new(454, EnhancedStatusCodes.TransientSecurity, "Temporary authentication failure");

    /// <summary>RFC 4954 §4: the client cancelled the exchange with "*", or sent bad base64.</summary>
    public static SmtpReply AuthenticationCancelled { get; } = new(501, "5.5.2", "Authentication cancelled");

    public static SmtpReply AuthenticationBadBase64 { get; } = new(501, "5.5.2", "Cannot decode response");

    /// <summary>RFC 4954 §4: an unsupported mechanism.</summary>
    public static SmtpReply UnrecognizedAuthenticationType { get; } = new(504, "5.5.4", "Unrecognized authentication type");

    /// <summary>RFC 4954 §4: AUTH after a successful AUTH.</summary>
    public static SmtpReply AlreadyAuthenticated { get; } = new(503, EnhancedStatusCodes.InvalidCommand, "Already authenticated");

    /// <summary>RFC 3207 §4: STARTTLS once TLS is active.</summary>
    public static SmtpReply TlsAlreadyActive { get; } = new(503, EnhancedStatusCodes.InvalidCommand, "TLS already active");

    /// <summary>RFC 6531 §3.2: a UTF-8 address without SMTPUTF8 in MAIL.</summary>
    public static SmtpReply Utf8AddressNeedsSmtpUtf8 { get; } = new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");

    /// <summary>RFC 8689 §3: REQUIRETLS on a session that is not under TLS.</summary>
    public static SmtpReply RequireTlsNeedsTls { get; } = new(530, "5.7.10", "REQUIRETLS needs a TLS session");

    /// <summary>
    /// RFC 3030 §2: a BDAT line whose chunk-size cannot be read. The chunk's length is unknown, so its octets cannot be
    /// told from commands: the server answers this and closes the connection (as Postfix does).
    /// </summary>
    public static SmtpReply SyntaxBdat { get; } = new(554, EnhancedStatusCodes.InvalidArguments, "Syntax: BDAT chunk-size [LAST]; closing connection");

    /// <summary>RFC 3030 §3: BODY=BINARYMIME content must come with BDAT.</summary>
    public static SmtpReply BinaryMimeNeedsBdat { get; } = new(503, EnhancedStatusCodes.InvalidCommand, "BODY=BINARYMIME requires BDAT");

    /// <summary>RFC 3030 §2: BDAT accepted, chunk received.</summary>
    public static SmtpReply ChunkReceived(long octets) => new(250, EnhancedStatusCodes.Ok, octets.ToString(CultureInfo.InvariantCulture) + " octets received");

    /// <summary>
    /// RFC 5321 §4.5.3.1.10 / RFC 1870 §6.2 / RFC 3463 4.3.1 "mail system full": the server cannot hold the message now
    /// (its memory budget for messages in flight is used up); the client tries again later.
    /// </summary>
    public static SmtpReply InsufficientStorage { get; } = new(452, "4.3.1", "Insufficient system storage, try again later");

    /// <summary>RFC 2920 §3.1 / Postfix "improper command pipelining": commands where none may follow.</summary>
    public static SmtpReply ImproperPipelining { get; } = new(554, "5.5.0", "Improper command pipelining");

    /// <summary>Too many connections (in total or from one address).</summary>
    public static SmtpReply TooManyConnections(string hostName) => new(421, EnhancedStatusCodes.TransientSecurity, hostName + " Too many connections, try again later");

    public static SmtpReply Closing(string hostName) => new(221, EnhancedStatusCodes.Ok, hostName + " closing connection");

    public static SmtpReply ServiceNotAvailable(string hostName, string enhancedCode, string text) => new(421, enhancedCode, hostName + " " + text);
}
