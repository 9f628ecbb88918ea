using System.Net;
using MailMesh.Smtp;
using MailMesh.Storage;

namespace MailMesh.Ingress.Acceptance;

/// <summary>
/// One message handed to <see cref="MessageAcceptor"/>: the envelope as the client gave it (already parsed and
/// normalised, each recipient already accepted by Policy at RCPT time or by the HTTP API's own checks) and the content.
/// </summary>
internal sealed record AcceptRequest
{
    /// <summary>The reverse path without angle brackets; empty for the null sender.</summary>
    public required string Sender { get; init; }

    /// <summary>The recipients with their RFC 3461 NOTIFY/ORCPT parameters; at least one.</summary>
    public required IReadOnlyList<NewRecipient> Recipients { get; init; }

    /// <summary>
    /// The message: RFC 5322 header section and body, CRLF line ends, not dot-stuffed. When
    /// <see cref="AddReceivedHeader"/> is true this is the content as the client sent it and the acceptor prepends our
    /// Received header (one copy); when false it already starts with it (the SMTP session writes the header first so the
    /// body is received straight into the final buffer).
    /// </summary>
    public required ReadOnlyMemory<byte> Content { get; init; }

    /// <summary>A message too large to hold in memory, read from its spill file (SMTP only, with
    /// <see cref="AddReceivedHeader"/> false); when set, <see cref="Content"/> is empty and the spool streams this.</summary>
    public MessageContentSource? ContentSource { get; init; }

    /// <summary>With <see cref="ContentSource"/>: the same spill file from an offset on, with its memory map (the
    /// content checks rebuild the header section in memory and keep the rest of the file as it is).</summary>
    public Func<long, MessageContentSource>? ContentFrom { get; init; }

    /// <summary>
    /// The rest of the message after <see cref="Content"/>, streamed (the HTTP API's raw submissions: <see cref="Content"/>
    /// is the rewritten header section, this the body as received, from its buffer or spill file, never copied). Only
    /// with <see cref="AddReceivedHeader"/>.
    /// </summary>
    public MessageContentSource? ContentTail { get; init; }

    /// <summary>Prepend our Received trace header (RFC 5321 §4.4) to <see cref="Content"/>.</summary>
    public bool AddReceivedHeader { get; init; } = true;

    /// <summary>The client's address as text (what Policy and the spool record), e.g. "192.0.2.1".</summary>
    public required string ClientAddress { get; init; }

    /// <summary>The client's IP address for the Received header's TCP-info, if known.</summary>
    public IPAddress? ClientIp { get; init; }

    /// <summary>HELO/EHLO name (SMTP) or a client identification (HTTP), if any.</summary>
    public string? ClientHelo { get; init; }

    /// <summary>The AUTH identity (SMTP) or API principal (HTTP), or null for an unauthenticated client.</summary>
    public string? AuthenticatedUser { get; init; }

    public MessageOrigin Origin { get; init; } = MessageOrigin.Smtp;

    /// <summary>
    /// The Received header's "with" protocol (RFC 5321 §4.4, RFC 3848 / RFC 6531 §3.7.3 registry: SMTP, ESMTP, ESMTPS,
    /// ESMTPA, ESMTPSA, UTF8SMTP..., or "HTTP"/"HTTPS" for the API).
    /// </summary>
    public string Protocol { get; init; } = "ESMTP";

    public BodyType BodyType { get; init; } = BodyType.SevenBit;

    /// <summary>RFC 6531 SMTPUTF8 was given at MAIL (or the HTTP submission has non-ASCII addresses).</summary>
    public bool SmtpUtf8 { get; init; }

    /// <summary>RFC 8689 REQUIRETLS: every onward hop must use TLS.</summary>
    public bool RequireTls { get; init; }

    /// <summary>RFC 3461 §4.4 ENVID, decoded from xtext, or null.</summary>
    public string? EnvelopeId { get; init; }

    /// <summary>RFC 3461 §4.3 RET: "FULL" or "HDRS", or null.</summary>
    public string? Ret { get; init; }

    /// <summary>
    /// The message id to store under. Null: a new one (version 7) is made. A fixed id makes the submission idempotent:
    /// storing the same id twice is a no-op the acceptor reports as <see cref="AcceptResult.Duplicate"/>.
    /// </summary>
    public Guid? MessageId { get; init; }

    /// <summary>When the message was received; null means now (the acceptor's TimeProvider).</summary>
    public DateTimeOffset? ReceivedAt { get; init; }

    /// <summary>The stored traceparent; null means the current activity's.</summary>
    public string? TraceParent { get; init; }

    /// <summary>
    /// The source-IP pool the submission names (HTTP: the <c>pool</c> member or parameter, or the API key's pool), or
    /// null; an authenticated submission may also name it with an X-MailMesh-Pool header field (docs/delivery.md "IP pools").
    /// </summary>
    public string? Pool { get; init; }
}

/// <summary>What <see cref="MessageAcceptor"/> decided, as the SMTP reply to give (the HTTP API maps it).</summary>
internal sealed record AcceptResult
{
    /// <summary>True when the message is committed to the spool (or was already, see <see cref="Duplicate"/>).</summary>
    public required bool Accepted { get; init; }

    /// <summary>250 2.0.0 "Ok: queued as id" when accepted; the 4xx/5xx refusal otherwise.</summary>
    public required SmtpReply Reply { get; init; }

    public required Guid MessageId { get; init; }

    /// <summary>True when a message with the same fixed id was already stored (idempotent resubmission).</summary>
    public bool Duplicate { get; init; }

    /// <summary>
    /// Why it was refused, as an OpenTelemetry error.type value: "loop", "sender_domain", "policy", "policy_unavailable",
    /// "spool_unavailable", "content" (a content check refused: DMARC, a scanner), "content_unavailable" (a content check failed:
    /// 451 4.7.1); null when accepted.
    /// </summary>
    public string? ErrorType { get; init; }

    /// <summary>The stored size in octets (including our Received header); 0 when refused.</summary>
    public long Size { get; init; }

    public int Code => Reply.Code;

    public string? EnhancedCode => Reply.EnhancedCode;

    public string Text => string.Join(' ', Reply.Lines);

    /// <summary>4xx: the client should try again later.</summary>
    public bool IsTransient => Reply.IsTransient;
}
