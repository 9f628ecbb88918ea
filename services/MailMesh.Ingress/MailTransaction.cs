using System.Diagnostics;
using MailMesh.Ingress.Memory;
using MailMesh.Smtp;
using MailMesh.Storage;

namespace MailMesh.Ingress;

/// <summary>
/// One SMTP mail transaction (RFC 5321 §3.3): from MAIL to the end of DATA or BDAT LAST, or to RSET, EHLO, STARTTLS or
/// the end of the session. Everything a transaction knows lives here, so ending it is dropping this object.
/// </summary>
internal sealed class MailTransaction
{
    public MailTransaction(string sender, MailParameters parameters, Activity? activity)
    {
        Sender = sender;
        Parameters = parameters;
        Activity = activity;
    }

    /// <summary>The reverse path without angle brackets; empty for the null sender.</summary>
    public string Sender { get; }

    /// <summary>MAIL parameters (SIZE, BODY, SMTPUTF8, REQUIRETLS, DSN's RET/ENVID).</summary>
    public MailParameters Parameters { get; }

    /// <summary>The transaction's span (a child of the session's).</summary>
    public Activity? Activity { get; }

    /// <summary>Recipients Policy accepted, in order, each once.</summary>
    public List<NewRecipient> Recipients { get; } = [];

    /// <summary>Policy's trace header for this transaction (Received-SPF, RFC 7208 §9.1), prepended with our Received
    /// header when the content starts; null when there is none.</summary>
    public string? TraceHeader { get; set; }

    /// <summary>Set when the content starts (DATA's 354 or the first BDAT).</summary>
    public Guid MessageId { get; private set; }

    public DateTimeOffset ReceivedAt { get; private set; }

    /// <summary>
    /// The message as it will be stored: our Received header, then the content as it arrives, in one pooled buffer
    /// reserved from the budget. Null until content starts, once refused, and once committed.
    /// </summary>
    public MessageBuffer? Content { get; private set; }

    /// <summary>BDAT: the chunk being read is the LAST one.</summary>
    public bool LastChunk { get; set; }

    /// <summary>BDAT: the reply every further chunk gets once a chunk made the message fail (RFC 3030 §2), and why.</summary>
    public SmtpReply? ChunkError { get; private set; }

    public string? ChunkErrorType { get; private set; }

    /// <summary>Starts the content: a message id and time, and (unless the budget refused it) the buffer it is received into.</summary>
    public void StartContent(Guid messageId, DateTimeOffset receivedAt, MessageBuffer? content)
    {
        MessageId = messageId;
        ReceivedAt = receivedAt;
        Activity?.SetTag("mailmesh.message.id", messageId.ToString());
        ReleaseContent();
        Content = content;
    }

    /// <summary>Returns the buffer to the pool and the budget (after the commit, or when the message fails).</summary>
    public void ReleaseContent()
    {
        Content?.Dispose();
        Content = null;
    }

    /// <summary>The message fails; its content is dropped at once, the rest of the chunks are read and discarded.</summary>
    public void FailChunks(SmtpReply reply, string errorType)
    {
        ChunkError ??= reply;
        ChunkErrorType ??= errorType;
        ReleaseContent();
    }

    /// <summary>Ends the transaction's span, tagging why it failed if it did.</summary>
    public void End(string? errorType)
    {
        if (errorType is not null)
        {
            Activity?.SetTag("error.type", errorType);
        }

        ReleaseContent();
        Activity?.Dispose();
    }
}
