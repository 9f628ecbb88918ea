namespace MailMesh.Storage;

/// <summary>
/// The mail store (issue 9): accounts, their folders and the messages in them, for local delivery (the Mailbox
/// service's delivery consumer), the RCPT check (Policy), the admin API and the POP3 and IMAP servers. Implementations:
/// <c>PostgresMailStore</c> (schema <c>mailbox</c>, distributed mode) and <c>SqliteMailStore</c> (standalone); both pass
/// one contract test suite. Registered as a singleton by <c>AddMailMeshStorage()</c> next to <see cref="ISpool"/>.
/// Every method is safe to call concurrently from any number of sessions, processes and replicas.
/// </summary>
/// <remarks>
/// <para><b>The model</b> (Dovecot/Stalwart-like). An <see cref="MailAccount"/> owns folders (<see cref="MailFolder"/>):
/// INBOX and the RFC 6154 SPECIAL-USE folders Sent, Drafts, Trash and Junk exist from its creation. A folder holds
/// messages (<see cref="MailMessageInfo"/>) addressed by UID: RFC 9051 §2.3.1.1 semantics, UIDs strictly ascending in
/// the order messages are added, never reused, valid as long as the folder's <see cref="MailFolder.UidValidity"/>. A
/// message is a per-recipient header prefix (Return-Path, Delivered-To, Received, written at delivery) followed by a
/// body that is stored once and shared: by every local recipient of one spool message, and by copies. Its size
/// (RFC822.SIZE, POP3 LIST) is prefix plus body. Each change of a message (added, flags, expunged) takes the folder's
/// next mod-sequence (RFC 7162 style), so "what changed since" is cheap.</para>
/// <para><b>Identities.</b> Accounts and folders are addressed by their ids (<see cref="MailAccount.Id"/>,
/// <see cref="MailFolder.Id"/>); every folder and message method takes the account id too and touches nothing of
/// another account, so a session can only reach its own user's data. Addresses compare case-insensitively (the
/// local part as <c>NormalizedAddress.ComparisonKey</c> does, the domain as its A-label).</para>
/// <para><b>How the protocol servers use it.</b> Authenticate: <see cref="GetAccountAsync"/> by the login address,
/// refuse when null or <see cref="MailAccount.Disabled"/>, verify <see cref="MailAccount.PasswordHash"/> with
/// <c>MailMesh.ServiceDefaults.Security.PasswordHash</c>. IMAP SELECT: <see cref="GetFolderAsync"/> (name, or "INBOX"
/// in any case), then <see cref="ListMessagesAsync"/> from UID 1 in pages (the session keeps its own
/// sequence-number → UID map); STATUS: <see cref="GetFolderStatusAsync"/>. FETCH: the listing has FLAGS, UID,
/// INTERNALDATE, RFC822.SIZE; bytes come from <see cref="OpenMessageAsync"/> (parse them with MimeKit for ENVELOPE,
/// BODYSTRUCTURE and sections). STORE: <see cref="StoreFlagsAsync"/> (returns the new flags for the untagged FETCH).
/// COPY/MOVE/APPEND: <see cref="CopyMessagesAsync"/>, <see cref="MoveMessagesAsync"/>, <see cref="AppendAsync"/>
/// (UIDPLUS data in the result). EXPUNGE/UID EXPUNGE/CLOSE: <see cref="ExpungeAsync"/>. IDLE and NOOP:
/// <see cref="WatchChanges"/> once per session (before the first listing, so nothing falls between), then await
/// <see cref="MailboxWatch.WaitAsync"/> and re-read the selected folder with
/// <see cref="ListMessagesAsync"/> (or <see cref="ListChangedAsync"/> since the highest mod-sequence seen; expunges
/// show as UIDs missing from a full listing). POP3: take the maildrop lock (<see cref="MaildropLock.TryAcquireAsync"/>,
/// "-ERR [IN-USE]" of RFC 2449 when null), list INBOX, and at QUIT commit the DELEs with one
/// <see cref="DeleteMessagesAsync"/> (atomic), then dispose the lock.</para>
/// <para><b>Errors.</b> Arguments out of contract throw <see cref="ArgumentException"/>; a store that cannot be
/// reached throws whatever its driver throws (the caller answers a temporary failure). Expected outcomes (no such
/// folder, over quota, name taken) are results, not exceptions.</para>
/// </remarks>
public interface IMailStore
{
    // ---- Accounts ------------------------------------------------------------------------------------------------

    /// <summary>The account whose own address is <paramref name="address"/> (no alias, no catch-all): what a login
    /// names. Null when there is none.</summary>
    Task<MailAccount?> GetAccountAsync(string address, CancellationToken cancellationToken);

    /// <summary>The account mail for <paramref name="address"/> goes to: the account itself, else an alias of that
    /// exact address, else the catch-all of its domain (an alias whose <see cref="MailAlias.Address"/> is
    /// "@domain"). Null when none matches.</summary>
    Task<MailAccount?> ResolveAsync(string address, CancellationToken cancellationToken);

    /// <summary>
    /// What RCPT TO may answer for <paramref name="address"/> of a local domain: resolved as <see cref="ResolveAsync"/>
    /// does; <see cref="RecipientCheck.OverQuota"/> when the account's usage plus <paramref name="size"/> (the SIZE
    /// parameter of MAIL, RFC 1870, or 0) exceeds its quota. One indexed query.
    /// </summary>
    Task<RecipientCheck> CheckRecipientAsync(string address, long size, CancellationToken cancellationToken);

    /// <summary>Creates the account with INBOX and the SPECIAL-USE folders (one transaction). False when an account
    /// (or an alias) with that address exists already; nothing is changed then.</summary>
    Task<bool> CreateAccountAsync(NewMailAccount account, CancellationToken cancellationToken);

    /// <summary>Sets <see cref="MailAccount.PasswordHash"/> (a <c>pbkdf2-sha256$…</c> string); false when no such account.</summary>
    Task<bool> SetPasswordHashAsync(string address, string passwordHash, CancellationToken cancellationToken);

    /// <summary>Sets <see cref="MailAccount.QuotaBytes"/> (null: no quota); false when no such account.</summary>
    Task<bool> SetQuotaAsync(string address, long? quotaBytes, CancellationToken cancellationToken);

    /// <summary>Disables (or re-enables) the account: a disabled account can neither log in nor receive (RCPT 550 5.2.1).
    /// False when no such account.</summary>
    Task<bool> SetDisabledAsync(string address, bool disabled, CancellationToken cancellationToken);

    /// <summary>Accounts ordered by address, those after <paramref name="after"/> (null: from the first), at most
    /// <paramref name="limit"/>: page with the last address of the previous page.</summary>
    Task<IReadOnlyList<MailAccount>> ListAccountsAsync(string? after, int limit, CancellationToken cancellationToken);

    /// <summary>Adds or replaces an alias: mail for <paramref name="address"/> (or, when it is "@domain", for any
    /// address of that domain without an account or alias of its own: the catch-all) goes to the account
    /// <paramref name="target"/>. False when the target is not an account or <paramref name="address"/> is one.</summary>
    Task<bool> SetAliasAsync(string address, string target, CancellationToken cancellationToken);

    /// <summary>Removes an alias or catch-all; false when there was none.</summary>
    Task<bool> RemoveAliasAsync(string address, CancellationToken cancellationToken);

    /// <summary>Every alias and catch-all, ordered by address (bounded by <paramref name="limit"/>).</summary>
    Task<IReadOnlyList<MailAlias>> ListAliasesAsync(int limit, CancellationToken cancellationToken);

    // ---- Folders -------------------------------------------------------------------------------------------------

    /// <summary>Every folder of the account, ordered by name (INBOX first).</summary>
    Task<IReadOnlyList<MailFolder>> ListFoldersAsync(long accountId, CancellationToken cancellationToken);

    /// <summary>The folder named <paramref name="name"/> ("INBOX" in any case is the inbox), or null.</summary>
    Task<MailFolder?> GetFolderAsync(long accountId, string name, CancellationToken cancellationToken);

    /// <summary>
    /// Counts of one folder for IMAP STATUS and SELECT (MESSAGES, UNSEEN, SIZE, UIDNEXT, UIDVALIDITY,
    /// HIGHESTMODSEQ): one query over the folder's index, no message bytes. Null when the folder is not the account's.
    /// </summary>
    Task<FolderStatus?> GetFolderStatusAsync(long accountId, long folderId, CancellationToken cancellationToken);

    /// <summary>Creates a folder (RFC 9051 §6.3.4; hierarchy delimiter <see cref="MailFolder.Delimiter"/>), subscribed.
    /// Null when the name is taken (INBOX always is).</summary>
    Task<MailFolder?> CreateFolderAsync(long accountId, string name, SpecialUse specialUse, CancellationToken cancellationToken);

    /// <summary>Deletes a folder and its messages (quota is given back); its inferiors stay. INBOX cannot be deleted.
    /// False when there was no such folder (or it was INBOX).</summary>
    Task<bool> DeleteFolderAsync(long accountId, string name, CancellationToken cancellationToken);

    /// <summary>
    /// RFC 9051 §6.3.6: renames the folder and its inferiors ("a/b" with "a"), keeping UIDVALIDITY and UIDs. Renaming
    /// INBOX moves all its messages into a new folder of the new name and leaves INBOX empty.
    /// </summary>
    Task<FolderRenameResult> RenameFolderAsync(long accountId, string name, string newName, CancellationToken cancellationToken);

    /// <summary>SUBSCRIBE/UNSUBSCRIBE; false when there is no such folder.</summary>
    Task<bool> SetSubscribedAsync(long accountId, string name, bool subscribed, CancellationToken cancellationToken);

    // ---- Messages ------------------------------------------------------------------------------------------------

    /// <summary>
    /// Local delivery of one spool message to its local recipients: the body is stored once for all of them, each
    /// recipient resolved (<see cref="ResolveAsync"/>) gets a message in its account's INBOX with its own header
    /// prefix, and usage grows by each message's size, in one transaction. Idempotent per
    /// (<see cref="LocalDelivery.SpoolMessageId"/>, <see cref="LocalDeliveryRecipient.RecipientId"/>): a recipient
    /// already stored by an earlier call (a redelivery under a new lease) is reported
    /// <see cref="LocalDeliveryStatus.Stored"/> again with its first UID and stored nothing, so delivery is exactly once.
    /// Over quota, unknown and disabled recipients store nothing and are reported as such. Returns one outcome per
    /// recipient, in the order given.
    /// </summary>
    Task<IReadOnlyList<LocalDeliveryOutcome>> DeliverAsync(LocalDelivery delivery, CancellationToken cancellationToken);

    /// <summary>
    /// The messages of a folder with UID &gt;= <paramref name="fromUid"/>, ascending, at most <paramref name="limit"/>:
    /// UID, flags, keywords, internal date, size, mod-sequence; no bytes. Empty when the folder is not the account's.
    /// Read a whole folder in pages: the next page starts at the last UID + 1.
    /// </summary>
    Task<IReadOnlyList<MailMessageInfo>> ListMessagesAsync(long accountId, long folderId, long fromUid, int limit, CancellationToken cancellationToken);

    /// <summary>The messages of a folder whose mod-sequence is greater than <paramref name="sinceModSeq"/> (added or
    /// flags changed since), ascending by UID, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<MailMessageInfo>> ListChangedAsync(long accountId, long folderId, long sinceModSeq, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// The message's bytes exactly as delivered or appended (header prefix, then the body; CRLF line ends), as a
    /// readable stream the caller disposes, or null when there is no such message.
    /// </summary>
    Task<Stream?> OpenMessageAsync(long accountId, long folderId, long uid, CancellationToken cancellationToken);

    /// <summary>
    /// STORE / UID STORE: replaces, adds or removes system flags and keywords of the messages of <paramref name="uids"/>
    /// that exist (others are ignored) in one transaction, each changed message taking a new mod-sequence. Returns the
    /// messages that exist with their flags afterwards (changed or not), ascending by UID.
    /// </summary>
    Task<IReadOnlyList<MailMessageInfo>> StoreFlagsAsync(long accountId, long folderId, IReadOnlyCollection<long> uids, FlagChange change, CancellationToken cancellationToken);

    /// <summary>COPY (RFC 9051 §6.4.7): copies the existing messages of <paramref name="uids"/> to the target folder
    /// (bodies shared, flags kept, new UIDs in source UID order), all or nothing; quota is charged.</summary>
    Task<CopyResult> CopyMessagesAsync(long accountId, long folderId, IReadOnlyCollection<long> uids, long targetFolderId, CancellationToken cancellationToken);

    /// <summary>MOVE (RFC 6851): as <see cref="CopyMessagesAsync"/>, and the sources are expunged in the same transaction
    /// (their UIDs are in <see cref="CopyResult.Uids"/>); usage does not change.</summary>
    Task<CopyResult> MoveMessagesAsync(long accountId, long folderId, IReadOnlyCollection<long> uids, long targetFolderId, CancellationToken cancellationToken);

    /// <summary>APPEND (RFC 9051 §6.3.12, RFC 4315 APPENDUID): stores a new message in the folder.</summary>
    Task<AppendResult> AppendAsync(long accountId, long folderId, MessageAppend message, CancellationToken cancellationToken);

    /// <summary>
    /// EXPUNGE, UID EXPUNGE, CLOSE: removes the messages flagged \Deleted (among <paramref name="uids"/>, or all when
    /// null) in one transaction and gives their size back to the quota. Returns the expunged UIDs, ascending (the
    /// IMAP session turns them into untagged EXPUNGE / VANISHED responses).
    /// </summary>
    Task<IReadOnlyList<long>> ExpungeAsync(long accountId, long folderId, IReadOnlyCollection<long>? uids, CancellationToken cancellationToken);

    /// <summary>POP3 QUIT (RFC 1939 §6, UPDATE state): removes the messages of <paramref name="uids"/> whatever their
    /// flags, all in one transaction (none when it fails). Returns the UIDs removed.</summary>
    Task<IReadOnlyList<long>> DeleteMessagesAsync(long accountId, long folderId, IReadOnlyCollection<long> uids, CancellationToken cancellationToken);

    // ---- Change signal, POP3 lock, health -------------------------------------------------------------------------

    /// <summary>
    /// Subscribes to changes of the account's folders made by any session on any replica (PostgreSQL LISTEN/NOTIFY in
    /// the distributed mode; in-process in standalone): messages added, flags changed, expunged, folders created,
    /// renamed or deleted. Subscribe first, then read the state: a change after the subscription is never missed
    /// (several may be folded into one signal). Dispose the watch when the session ends.
    /// </summary>
    MailboxWatch WatchChanges(long accountId);

    /// <summary>
    /// Takes the account's POP3 maildrop lock for <paramref name="holderId"/> until <paramref name="expiresAt"/>, or
    /// extends it when that holder has it already. False while another holder's lock has not expired at
    /// <paramref name="now"/>. Use
    /// <see cref="MaildropLock"/>, which renews it while the session lives; a holder that dies loses it at expiry.
    /// </summary>
    Task<bool> TryLockMaildropAsync(long accountId, Guid holderId, DateTimeOffset now, DateTimeOffset expiresAt, CancellationToken cancellationToken);

    /// <summary>Releases the maildrop lock if <paramref name="holderId"/> holds it.</summary>
    Task ReleaseMaildropAsync(long accountId, Guid holderId, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes at most <paramref name="limit"/> exactly-once keys of local deliveries (<see cref="DeliverAsync"/>) stored
    /// before <paramref name="olderThan"/>, and returns how many. A key is needed only while its spool recipient can
    /// still be attempted again (until its result is applied, at most Queue:MaxAge), so the Mailbox service drops keys
    /// well past that; the stored messages are not touched.
    /// </summary>
    Task<int> PurgeDeliveryKeysAsync(DateTimeOffset olderThan, int limit, CancellationToken cancellationToken);

    /// <summary>A cheap round trip to the store, for readiness probes.</summary>
    Task PingAsync(CancellationToken cancellationToken);
}
