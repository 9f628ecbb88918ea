namespace MailMesh.Storage;

// The values IMailStore takes and returns. Timestamps are truncated to the millisecond and read back in UTC, as the
// spool's are.

/// <summary>A mail account: one user's mailboxes, password and quota.</summary>
public sealed record MailAccount
{
    public required long Id { get; init; }

    /// <summary>The account's address as created (its login name); compared case-insensitively.</summary>
    public required string Address { get; init; }

    /// <summary><c>pbkdf2-sha256$iterations$salt$hash</c> (<c>MailMesh.ServiceDefaults.Security.PasswordHash</c>); empty:
    /// no password, no login (the account still receives).</summary>
    public required string PasswordHash { get; init; }

    /// <summary>A disabled account can neither log in nor receive.</summary>
    public required bool Disabled { get; init; }

    /// <summary>Most bytes its messages may take; null for no limit.</summary>
    public long? QuotaBytes { get; init; }

    /// <summary>Bytes its messages take now (every message's size, copies included).</summary>
    public required long UsedBytes { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
}

/// <summary>What <see cref="IMailStore.CreateAccountAsync"/> creates.</summary>
public sealed record NewMailAccount
{
    public required string Address { get; init; }
    public string PasswordHash { get; init; } = string.Empty;
    public long? QuotaBytes { get; init; }
    public bool Disabled { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
}

/// <summary>An alias (mail for <see cref="Address"/> goes to the account <see cref="Target"/>), or a domain's catch-all
/// when <see cref="Address"/> is "@domain".</summary>
public sealed record MailAlias
{
    public required string Address { get; init; }
    public required string Target { get; init; }

    public bool IsCatchAll => Address.StartsWith('@');
}

/// <summary>The answer to a RCPT for a local domain (<see cref="IMailStore.CheckRecipientAsync"/>).</summary>
public enum RecipientCheck
{
    /// <summary>The recipient resolves to an account that can take the message.</summary>
    Ok = 0,

    /// <summary>No account, alias or catch-all: 550 5.1.1 (RFC 3463).</summary>
    UnknownUser = 1,

    /// <summary>The account's quota would be exceeded: 452 4.2.2.</summary>
    OverQuota = 2,

    /// <summary>The account is disabled: 550 5.2.1.</summary>
    Disabled = 3,
}

/// <summary>RFC 6154 special-use attributes.</summary>
public enum SpecialUse
{
    None = 0,
    Sent = 1,
    Drafts = 2,
    Trash = 3,
    Junk = 4,
    Archive = 5,
}

public static class SpecialUses
{
    /// <summary>The LIST attribute of <paramref name="use"/> ("\Sent", ...), or null for <see cref="SpecialUse.None"/>.</summary>
    public static string? Attribute(this SpecialUse use) => use switch
    {
        SpecialUse.Sent => @"\Sent",
        SpecialUse.Drafts => @"\Drafts",
        SpecialUse.Trash => @"\Trash",
        SpecialUse.Junk => @"\Junk",
        SpecialUse.Archive => @"\Archive",
        _ => null,
    };

    /// <summary>The folders every account gets at creation besides INBOX, with their names.</summary>
    public static IReadOnlyList<(string Name, SpecialUse Use)> Defaults { get; } =
        [("Sent", SpecialUse.Sent), ("Drafts", SpecialUse.Drafts), ("Trash", SpecialUse.Trash), ("Junk", SpecialUse.Junk)];
}

/// <summary>A folder (an IMAP mailbox).</summary>
public sealed record MailFolder
{
    /// <summary>The IMAP hierarchy delimiter of folder names.</summary>
    public const char Delimiter = '/';

    /// <summary>The inbox's name; "INBOX" in any case names it (RFC 9051 §5.1).</summary>
    public const string Inbox = "INBOX";

    public required long Id { get; init; }
    public required long AccountId { get; init; }

    /// <summary>The full name, levels separated by <see cref="Delimiter"/> (UTF-8, RFC 9051 §5.1).</summary>
    public required string Name { get; init; }
    public required SpecialUse SpecialUse { get; init; }
    public required bool Subscribed { get; init; }

    /// <summary>RFC 9051 §2.3.1.1: changes whenever UIDs of this name could be reused (never for a living folder; a folder
    /// deleted and created again under its name gets a new one). Nonzero, 32 bits.</summary>
    public required uint UidValidity { get; init; }

    /// <summary>The UID the next message added will get at least.</summary>
    public required long UidNext { get; init; }

    /// <summary>The mod-sequence of the folder's latest change (RFC 7162 HIGHESTMODSEQ); grows with every change.</summary>
    public required long HighestModSeq { get; init; }

    public bool IsInbox => Name == Inbox;
}

/// <summary>IMAP STATUS data of one folder.</summary>
public sealed record FolderStatus
{
    public required MailFolder Folder { get; init; }
    public required long Messages { get; init; }

    /// <summary>Messages without \Seen.</summary>
    public required long Unseen { get; init; }

    /// <summary>Messages with \Deleted.</summary>
    public required long Deleted { get; init; }

    /// <summary>Total size of the folder's messages (RFC 9051 STATUS SIZE).</summary>
    public required long Size { get; init; }
}

public enum FolderRenameResult
{
    Renamed = 0,
    NotFound = 1,

    /// <summary>The new name (or an inferior's new name) is taken.</summary>
    AlreadyExists = 2,
}

/// <summary>IMAP system flags (RFC 9051 §2.3.2), a bit set; keywords are separate strings.</summary>
[Flags]
public enum MessageFlags
{
    None = 0,
    Seen = 1,
    Answered = 2,
    Flagged = 4,
    Deleted = 8,
    Draft = 16,
}

/// <summary>One message of a folder as listings give it: no bytes.</summary>
public sealed record MailMessageInfo
{
    public required long Uid { get; init; }
    public required MessageFlags Flags { get; init; }

    /// <summary>Keywords (RFC 9051 flag-keyword atoms such as $Forwarded), as set; compared case-insensitively.</summary>
    public required IReadOnlyList<string> Keywords { get; init; }

    /// <summary>INTERNALDATE: when it was delivered, or the date APPEND gave.</summary>
    public required DateTimeOffset InternalDate { get; init; }

    /// <summary>RFC822.SIZE: the exact number of bytes <see cref="IMailStore.OpenMessageAsync"/> returns.</summary>
    public required long Size { get; init; }
    public required long ModSeq { get; init; }
}

public enum FlagChangeMode
{
    /// <summary>FLAGS: the message's flags and keywords become exactly these.</summary>
    Replace = 0,

    /// <summary>+FLAGS.</summary>
    Add = 1,

    /// <summary>-FLAGS.</summary>
    Remove = 2,
}

/// <summary>A STORE's change of flags.</summary>
public sealed record FlagChange
{
    public required FlagChangeMode Mode { get; init; }
    public MessageFlags Flags { get; init; }
    public IReadOnlyList<string> Keywords { get; init; } = [];
}

public enum CopyStatus
{
    Copied = 0,

    /// <summary>No such target folder (IMAP [TRYCREATE]).</summary>
    NoTarget = 1,

    /// <summary>The copies would exceed the account's quota (IMAP [OVERQUOTA], RFC 9208); nothing copied.</summary>
    OverQuota = 2,
}

/// <summary>The outcome of COPY/MOVE, with RFC 4315 COPYUID data.</summary>
public sealed record CopyResult
{
    public required CopyStatus Status { get; init; }

    /// <summary>The target folder's UIDVALIDITY.</summary>
    public uint UidValidity { get; init; }

    /// <summary>(source UID, new UID) of each message copied, ascending by source UID; empty when none existed.</summary>
    public IReadOnlyList<(long Source, long Target)> Uids { get; init; } = [];
}

/// <summary>An APPEND.</summary>
public sealed record MessageAppend
{
    /// <summary>The message bytes as the client sent them.</summary>
    public required ReadOnlyMemory<byte> Content { get; init; }
    public MessageFlags Flags { get; init; }
    public IReadOnlyList<string> Keywords { get; init; } = [];
    public required DateTimeOffset InternalDate { get; init; }
}

public enum AppendStatus
{
    Appended = 0,

    /// <summary>No such folder ([TRYCREATE]).</summary>
    NoFolder = 1,

    /// <summary>[OVERQUOTA]; nothing stored.</summary>
    OverQuota = 2,
}

/// <summary>The outcome of APPEND, with RFC 4315 APPENDUID data.</summary>
public sealed record AppendResult
{
    public required AppendStatus Status { get; init; }
    public uint UidValidity { get; init; }
    public long Uid { get; init; }
}

/// <summary>One spool message to store for its local recipients (<see cref="IMailStore.DeliverAsync"/>).</summary>
public sealed record LocalDelivery
{
    /// <summary>The spool message; with each recipient id, the key that makes delivery idempotent.</summary>
    public required Guid SpoolMessageId { get; init; }

    /// <summary>The message as the spool holds it (CRLF line ends, not dot-stuffed): stored once, shared by all.</summary>
    public required ReadOnlyMemory<byte> Body { get; init; }

    /// <summary>INTERNALDATE of the stored messages.</summary>
    public required DateTimeOffset DeliveredAt { get; init; }
    public required IReadOnlyList<LocalDeliveryRecipient> Recipients { get; init; }

    /// <summary>Store in each account's \Junk folder (RFC 6154; INBOX when the account has none): the message carries
    /// <see cref="JunkHeader.Name"/> (DMARC p=quarantine, a spam verdict).</summary>
    public bool Junk { get; init; }
}

/// <summary>
/// The header field Ingress's content checks add to a message that belongs in the \Junk folder (and remove from what a
/// client sends, so it cannot be forged); local delivery reads it.
/// </summary>
public static class JunkHeader
{
    public const string Name = "X-MailMesh-Junk";

    /// <summary>True when the header section at the start of <paramref name="message"/> has the field.</summary>
    public static bool IsIn(ReadOnlySpan<byte> message)
    {
        ReadOnlySpan<byte> name = "X-MailMesh-Junk:"u8;
        var position = 0;
        while (position < message.Length)
        {
            var line = message[position..];
            var end = line.IndexOf("\r\n"u8);
            if (end <= 0)
            {
                // The empty line that ends the header section, or no line end at all.
                return false;
            }

            if (line.Length >= name.Length && System.Text.Ascii.EqualsIgnoreCase(line[..name.Length], name))
            {
                return true;
            }

            position += end + 2;
        }

        return false;
    }
}

public sealed record LocalDeliveryRecipient
{
    /// <summary>The spool's recipient id (<see cref="ClaimedRecipient.RecipientId"/>).</summary>
    public required long RecipientId { get; init; }

    /// <summary>The envelope recipient (RCPT TO), resolved through aliases and catch-all.</summary>
    public required string Address { get; init; }

    /// <summary>Header lines written before the body for this recipient only (RFC 5321 §4.4: Return-Path, Received;
    /// Delivered-To), each ending in CRLF; may be empty.</summary>
    public ReadOnlyMemory<byte> HeaderPrefix { get; init; }
}

public enum LocalDeliveryStatus
{
    /// <summary>Stored now, or by an earlier delivery of the same spool recipient.</summary>
    Stored = 0,
    UnknownUser = 1,
    OverQuota = 2,
    Disabled = 3,
}

public sealed record LocalDeliveryOutcome
{
    public required long RecipientId { get; init; }
    public required LocalDeliveryStatus Status { get; init; }

    /// <summary>When stored: the account, the folder and the message's UID.</summary>
    public long AccountId { get; init; }
    public long FolderId { get; init; }
    public long Uid { get; init; }
}

/// <summary>A change signal: something changed in folder <see cref="FolderId"/> of account <see cref="AccountId"/>; a null
/// folder means any folder may have changed (the folder list itself, or signals may have been lost: re-read all).</summary>
public readonly record struct MailboxChange(long AccountId, long? FolderId);
