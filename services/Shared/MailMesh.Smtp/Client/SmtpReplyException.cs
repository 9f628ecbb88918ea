namespace MailMesh.Smtp.Client;

/// <summary>The server sent something that is not an RFC 5321 §4.2 reply. The connection cannot be used further.</summary>
public sealed class SmtpReplyException : Exception
{
    public SmtpReplyException()
    {
    }

    public SmtpReplyException(string message)
        : base(message)
    {
    }

    public SmtpReplyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
