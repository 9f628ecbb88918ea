namespace MailMesh.Mailbox;

public static class MailboxExtensions
{
    /// <summary>
    /// Registers the Mailbox service (issue 9): local mailboxes, delivery into them, and the POP3 and IMAP listeners.
    /// </summary>
    public static IHostApplicationBuilder AddMailbox(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder;
    }
}
