using System.Data.Common;
using MailMesh.Smtp;

namespace MailMesh.Storage.Mailboxes;

/// <summary>
/// <see cref="IMailStore"/> written once over ADO.NET: the PostgreSQL and SQLite stores differ only in how an operation
/// gets its connection and transaction (<see cref="ReadAsync{T}"/>, <see cref="WriteAsync{T}"/>), in the small dialect
/// translation of <see cref="MailDb"/>, and in how committed changes reach other replicas' watches.
/// </summary>
internal abstract class SqlMailStore : IMailStore
{
    /// <summary>Most rows one listing returns, whatever the caller asks.</summary>
    public const int MaxPage = 10_000;

    private protected MailboxChangeHub Hub { get; } = new();

    /// <summary>Runs a read on a connection of its own (no transaction).</summary>
    protected abstract Task<T> ReadAsync<T>(Func<MailDb, Task<T>> operation, CancellationToken cancellationToken);

    /// <summary>Runs a write in one durable transaction and returns once it committed; then signals its changes.</summary>
    protected abstract Task<T> WriteAsync<T>(Func<MailDb, Task<T>> operation, long size, CancellationToken cancellationToken);

    // ---- Accounts ------------------------------------------------------------------------------------------------

    public Task<MailAccount?> GetAccountAsync(string address, CancellationToken cancellationToken)
    {
        var key = MailKeys.Address(address);
        return ReadAsync(async db =>
        {
            await using var command = db.Command(MailSql.GetAccount).With("@key", key);
            return await ReadAccountAsync(db, command);
        }, cancellationToken);
    }

    public Task<MailAccount?> ResolveAsync(string address, CancellationToken cancellationToken)
    {
        var (key, catchAll) = MailKeys.Recipient(address);
        return ReadAsync(db => ResolveAsync(db, key, catchAll), cancellationToken);
    }

    public async Task<RecipientCheck> CheckRecipientAsync(string address, long size, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        var account = await ResolveAsync(address, cancellationToken);
        return account switch
        {
            null => RecipientCheck.UnknownUser,
            { Disabled: true } => RecipientCheck.Disabled,
            { QuotaBytes: { } quota } when account.UsedBytes + size > quota || account.UsedBytes >= quota => RecipientCheck.OverQuota,
            _ => RecipientCheck.Ok,
        };
    }

    public Task<bool> CreateAccountAsync(NewMailAccount account, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(account);
        ArgumentNullException.ThrowIfNull(account.PasswordHash);
        if (account.QuotaBytes is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(account), account.QuotaBytes, "QuotaBytes must not be negative.");
        }

        var key = MailKeys.Address(account.Address);
        return WriteAsync(async db =>
        {
            await using (var alias = db.Command(MailSql.AliasExists).With("@key", key))
            {
                if (await alias.ExecuteScalarAsync(CancellationToken.None) is not null)
                {
                    return false;
                }
            }

            long id;
            await using (var insert = db.Command(MailSql.InsertAccount)
                .With("@address", account.Address.Trim())
                .With("@key", key)
                .With("@password_hash", account.PasswordHash)
                .With("@disabled", account.Disabled)
                .With("@quota_bytes", account.QuotaBytes)
                .With("@created_at", db.Time(account.CreatedAt)))
            {
                if (await insert.ScalarInt64Async() is not { } created)
                {
                    return false;
                }

                id = created;
            }

            await InsertFolderAsync(db, id, MailFolder.Inbox, SpecialUse.None);
            foreach (var (name, use) in SpecialUses.Defaults)
            {
                await InsertFolderAsync(db, id, name, use);
            }

            return true;
        }, 0, cancellationToken);
    }

    public Task<bool> SetPasswordHashAsync(string address, string passwordHash, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(passwordHash);
        return UpdateAccountAsync(MailSql.SetPasswordHash, address, passwordHash, cancellationToken);
    }

    public Task<bool> SetQuotaAsync(string address, long? quotaBytes, CancellationToken cancellationToken)
    {
        if (quotaBytes is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(quotaBytes), quotaBytes, "A quota must not be negative.");
        }

        return UpdateAccountAsync(MailSql.SetQuota, address, quotaBytes, cancellationToken);
    }

    public Task<bool> SetDisabledAsync(string address, bool disabled, CancellationToken cancellationToken) =>
        UpdateAccountAsync(MailSql.SetDisabled, address, disabled, cancellationToken);

    private Task<bool> UpdateAccountAsync(string sql, string address, object? value, CancellationToken cancellationToken)
    {
        var key = MailKeys.Address(address);
        return WriteAsync(async db =>
        {
            await using var command = db.Command(sql).With("@key", key).With("@value", value);
            return await command.ExecuteNonQueryAsync(CancellationToken.None) > 0;
        }, 0, cancellationToken);
    }

    public Task<IReadOnlyList<MailAccount>> ListAccountsAsync(string? after, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        var afterKey = string.IsNullOrEmpty(after) ? string.Empty : MailKeys.Address(after);
        return ReadAsync<IReadOnlyList<MailAccount>>(async db =>
        {
            await using var command = db.Command(MailSql.ListAccounts).With("@after", afterKey).With("@limit", Math.Min(limit, MaxPage));
            await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
            var list = new List<MailAccount>();
            while (await reader.ReadAsync(CancellationToken.None))
            {
                list.Add(ReadAccount(db, reader));
            }

            return list;
        }, cancellationToken);
    }

    public Task<bool> SetAliasAsync(string address, string target, CancellationToken cancellationToken)
    {
        var key = MailKeys.Alias(address);
        var targetKey = MailKeys.Address(target);
        return WriteAsync(async db =>
        {
            await using (var own = db.Command(MailSql.AccountIdByKey).With("@key", key))
            {
                if (await own.ExecuteScalarAsync(CancellationToken.None) is not null)
                {
                    return false;
                }
            }

            long accountId;
            await using (var find = db.Command(MailSql.AccountIdByKey).With("@key", targetKey))
            {
                if (await find.ScalarInt64Async() is not { } id)
                {
                    return false;
                }

                accountId = id;
            }

            await using var upsert = db.Command(MailSql.UpsertAlias)
                .With("@key", key).With("@address", address.Trim()).With("@account_id", accountId);
            await upsert.ExecuteNonQueryAsync(CancellationToken.None);
            return true;
        }, 0, cancellationToken);
    }

    public Task<bool> RemoveAliasAsync(string address, CancellationToken cancellationToken)
    {
        var key = MailKeys.Alias(address);
        return WriteAsync(async db =>
        {
            await using var command = db.Command(MailSql.RemoveAlias).With("@key", key);
            return await command.ExecuteNonQueryAsync(CancellationToken.None) > 0;
        }, 0, cancellationToken);
    }

    public Task<IReadOnlyList<MailAlias>> ListAliasesAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        return ReadAsync<IReadOnlyList<MailAlias>>(async db =>
        {
            await using var command = db.Command(MailSql.ListAliases).With("@limit", Math.Min(limit, MaxPage));
            await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
            var list = new List<MailAlias>();
            while (await reader.ReadAsync(CancellationToken.None))
            {
                list.Add(new MailAlias { Address = reader.GetString(0), Target = reader.GetString(1) });
            }

            return list;
        }, cancellationToken);
    }

    // ---- Folders -------------------------------------------------------------------------------------------------

    public Task<IReadOnlyList<MailFolder>> ListFoldersAsync(long accountId, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<MailFolder>>(async db =>
        {
            await using var command = db.Command(MailSql.ListFolders).With("@account_id", accountId);
            var folders = await ReadFoldersAsync(command);

            // INBOX first, then by name in ordinal order (the database's collation is not ours to depend on).
            folders.Sort((a, b) => a.IsInbox != b.IsInbox ? (a.IsInbox ? -1 : 1) : string.CompareOrdinal(a.Name, b.Name));
            return folders;
        }, cancellationToken);

    public Task<MailFolder?> GetFolderAsync(long accountId, string name, CancellationToken cancellationToken)
    {
        var folderName = MailKeys.FolderName(name);
        return ReadAsync(db => GetFolderAsync(db, accountId, folderName), cancellationToken);
    }

    public Task<FolderStatus?> GetFolderStatusAsync(long accountId, long folderId, CancellationToken cancellationToken) =>
        ReadAsync(async db =>
        {
            MailFolder? folder;
            await using (var command = db.Command(MailSql.GetFolderById).With("@account_id", accountId).With("@folder_id", folderId))
            {
                folder = (await ReadFoldersAsync(command)).FirstOrDefault();
            }

            if (folder is null)
            {
                return null;
            }

            await using var counts = db.Command(MailSql.FolderCounts).With("@folder_id", folderId);
            await using var reader = await counts.ExecuteReaderAsync(CancellationToken.None);
            await reader.ReadAsync(CancellationToken.None);
            return new FolderStatus
            {
                Folder = folder,
                Messages = reader.GetInt64(0),
                Unseen = reader.GetInt64(1),
                Deleted = reader.GetInt64(2),
                Size = reader.GetInt64(3),
            };
        }, cancellationToken);

    public Task<MailFolder?> CreateFolderAsync(long accountId, string name, SpecialUse specialUse, CancellationToken cancellationToken)
    {
        var folderName = MailKeys.NewFolderName(name);
        if (!Enum.IsDefined(specialUse))
        {
            throw new ArgumentOutOfRangeException(nameof(specialUse), specialUse, "Unknown special use.");
        }

        return WriteAsync(async db =>
        {
            if (folderName == MailFolder.Inbox || !await LockAccountAsync(db, accountId))
            {
                return null;
            }

            var id = await InsertFolderAsync(db, accountId, folderName, specialUse);
            if (id is null)
            {
                return null;
            }

            db.Changes.Add(new MailboxChange(accountId, null));
            return await GetFolderAsync(db, accountId, folderName);
        }, 0, cancellationToken);
    }

    public Task<bool> DeleteFolderAsync(long accountId, string name, CancellationToken cancellationToken)
    {
        var folderName = MailKeys.FolderName(name);
        return WriteAsync(async db =>
        {
            if (folderName == MailFolder.Inbox || !await LockAccountAsync(db, accountId)
                || await GetFolderAsync(db, accountId, folderName) is not { } folder)
            {
                return false;
            }

            await using (var messages = db.Command(MailSql.DeleteFolderMessages).With("@folder_id", folder.Id))
            {
                await ReleaseDeletedAsync(db, accountId, messages);
            }

            await using (var delete = db.Command(MailSql.DeleteFolder).With("@folder_id", folder.Id))
            {
                await delete.ExecuteNonQueryAsync(CancellationToken.None);
            }

            db.Changes.Add(new MailboxChange(accountId, null));
            return true;
        }, 0, cancellationToken);
    }

    public Task<FolderRenameResult> RenameFolderAsync(long accountId, string name, string newName, CancellationToken cancellationToken)
    {
        var oldName = MailKeys.FolderName(name);
        var target = MailKeys.NewFolderName(newName);
        return WriteAsync(async db =>
        {
            if (!await LockAccountAsync(db, accountId) || await GetFolderAsync(db, accountId, oldName) is not { } folder)
            {
                return FolderRenameResult.NotFound;
            }

            await using (var conflicts = db.Command(MailSql.RenameConflicts)
                .With("@account_id", accountId).With("@new_name", target).With("@new_prefix", target + MailFolder.Delimiter))
            {
                if (target == MailFolder.Inbox || await conflicts.ScalarInt64Async() > 0)
                {
                    return FolderRenameResult.AlreadyExists;
                }
            }

            db.Changes.Add(new MailboxChange(accountId, null));
            if (folder.IsInbox)
            {
                // RFC 9051 §6.3.6: renaming INBOX moves its messages to a new folder and leaves INBOX, empty, in place.
                var created = await InsertFolderAsync(db, accountId, target, SpecialUse.None);
                var uids = await AllUidsAsync(db, accountId, folder.Id);
                await CopyAsync(db, accountId, folder.Id, uids, created!.Value);
                await using var delete = db.Command(MailSql.DeleteMessages)
                    .With("@folder_id", folder.Id).With("@account_id", accountId)
                    .With("@all_uids", true).With("@uids", db.Ids([])).With("@only_deleted", false);
                await delete.ExecuteNonQueryAsync(CancellationToken.None);
                await TakeModSeqAsync(db, accountId, folder.Id);
                return FolderRenameResult.Renamed;
            }

            await using var rename = db.Command(MailSql.RenameFolders)
                .With("@account_id", accountId).With("@old_name", oldName).With("@old_prefix", oldName + MailFolder.Delimiter)
                .With("@new_name", target);
            await rename.ExecuteNonQueryAsync(CancellationToken.None);
            return FolderRenameResult.Renamed;
        }, 0, cancellationToken);
    }

    public Task<bool> SetSubscribedAsync(long accountId, string name, bool subscribed, CancellationToken cancellationToken)
    {
        var folderName = MailKeys.FolderName(name);
        return WriteAsync(async db =>
        {
            await using var command = db.Command(MailSql.SetSubscribed)
                .With("@account_id", accountId).With("@name", folderName).With("@subscribed", subscribed);
            return await command.ExecuteNonQueryAsync(CancellationToken.None) > 0;
        }, 0, cancellationToken);
    }

    // ---- Messages ------------------------------------------------------------------------------------------------

    public Task<IReadOnlyList<LocalDeliveryOutcome>> DeliverAsync(LocalDelivery delivery, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        ArgumentNullException.ThrowIfNull(delivery.Recipients);
        var recipients = delivery.Recipients
            .Select(r => (Recipient: r, Keys: MailKeys.Recipient(r.Address)))
            .ToList();
        if (recipients.DistinctBy(r => r.Recipient.RecipientId).Count() != recipients.Count)
        {
            throw new ArgumentException("A recipient appears twice in one delivery.", nameof(delivery));
        }

        var body = delivery.Body;
        return WriteAsync<IReadOnlyList<LocalDeliveryOutcome>>(async db =>
        {
            var outcomes = new Dictionary<long, LocalDeliveryOutcome>();
            var spoolId = db.Uuid(delivery.SpoolMessageId);

            // Exactly once: recipients an earlier attempt stored are reported as stored, with their first UID.
            await using (var find = db.Command(MailSql.FindDeliveries)
                .With("@spool_message_id", spoolId).With("@recipient_ids", db.Ids(recipients.Select(r => r.Recipient.RecipientId))))
            await using (var reader = await find.ExecuteReaderAsync(CancellationToken.None))
            {
                while (await reader.ReadAsync(CancellationToken.None))
                {
                    var id = reader.GetInt64(0);
                    outcomes[id] = new LocalDeliveryOutcome
                    {
                        RecipientId = id,
                        Status = LocalDeliveryStatus.Stored,
                        AccountId = reader.GetInt64(1),
                        FolderId = reader.GetInt64(2),
                        Uid = reader.GetInt64(3),
                    };
                }
            }

            // Resolve the rest, then store in account order: every transaction locks accounts in ascending id order.
            var pending = new List<(LocalDeliveryRecipient Recipient, MailAccount Account)>();
            foreach (var (recipient, (key, catchAll)) in recipients)
            {
                if (outcomes.ContainsKey(recipient.RecipientId))
                {
                    continue;
                }

                var account = await ResolveAsync(db, key, catchAll);
                if (account is null || account.Disabled)
                {
                    outcomes[recipient.RecipientId] = new LocalDeliveryOutcome
                    {
                        RecipientId = recipient.RecipientId,
                        Status = account is null ? LocalDeliveryStatus.UnknownUser : LocalDeliveryStatus.Disabled,
                    };
                    continue;
                }

                pending.Add((recipient, account));
            }

            long? bodyId = null;
            foreach (var (recipient, account) in pending.OrderBy(p => p.Account.Id))
            {
                var size = recipient.HeaderPrefix.Length + (long)body.Length;
                var usage = await LockAccountUsageAsync(db, account.Id);
                if (usage is not { } u || u.Disabled || (u.Quota is { } quota && u.Used + size > quota))
                {
                    outcomes[recipient.RecipientId] = new LocalDeliveryOutcome
                    {
                        RecipientId = recipient.RecipientId,
                        Status = usage switch
                        {
                            null => LocalDeliveryStatus.UnknownUser,
                            { Disabled: true } => LocalDeliveryStatus.Disabled,
                            _ => LocalDeliveryStatus.OverQuota,
                        },
                    };
                    continue;
                }

                bodyId ??= await SpoolBodyAsync(db, spoolId, body);
                // Quarantined mail goes to the account's \Junk folder while it has one (a user may have deleted it).
                long? junk = null;
                if (delivery.Junk)
                {
                    await using var junkCommand = db.Command(MailSql.SpecialUseFolderOf).With("@account_id", account.Id).With("@special_use", (int)SpecialUse.Junk);
                    junk = await junkCommand.ScalarInt64Async();
                }

                await using var inboxCommand = db.Command(MailSql.InboxOf).With("@account_id", account.Id);
                var inbox = junk ?? await inboxCommand.ScalarInt64Async()
                    ?? await InsertFolderAsync(db, account.Id, MailFolder.Inbox, SpecialUse.None)
                    ?? throw new InvalidOperationException("The inbox could not be created.");
                var (uid, modSeq) = await TakeUidsAsync(db, account.Id, inbox, 1);
                await InsertMessageAsync(db, inbox, uid, account.Id, bodyId.Value, recipient.HeaderPrefix.ToArray(), size,
                    MessageFlags.None, string.Empty, delivery.DeliveredAt, modSeq);
                await AddUsageAsync(db, account.Id, size);
                await using (var record = db.Command(MailSql.InsertDelivery)
                    .With("@spool_message_id", spoolId).With("@recipient_id", recipient.RecipientId)
                    .With("@account_id", account.Id).With("@folder_id", inbox).With("@uid", uid)
                    .With("@delivered_at", db.Time(delivery.DeliveredAt)))
                {
                    await record.ExecuteNonQueryAsync(CancellationToken.None);
                }

                db.Changes.Add(new MailboxChange(account.Id, inbox));
                outcomes[recipient.RecipientId] = new LocalDeliveryOutcome
                {
                    RecipientId = recipient.RecipientId,
                    Status = LocalDeliveryStatus.Stored,
                    AccountId = account.Id,
                    FolderId = inbox,
                    Uid = uid,
                };
            }

            return [.. recipients.Select(r => outcomes[r.Recipient.RecipientId])];
        }, body.Length, cancellationToken);
    }

    public Task<IReadOnlyList<MailMessageInfo>> ListMessagesAsync(long accountId, long folderId, long fromUid, int limit, CancellationToken cancellationToken) =>
        ListAsync(MailSql.ListMessages, accountId, folderId, ("@from_uid", fromUid), limit, cancellationToken);

    public Task<IReadOnlyList<MailMessageInfo>> ListChangedAsync(long accountId, long folderId, long sinceModSeq, int limit, CancellationToken cancellationToken) =>
        ListAsync(MailSql.ListChanged, accountId, folderId, ("@since", sinceModSeq), limit, cancellationToken);

    private Task<IReadOnlyList<MailMessageInfo>> ListAsync(string sql, long accountId, long folderId, (string Name, long Value) from, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        return ReadAsync(async db =>
        {
            await using var command = db.Command(sql)
                .With("@folder_id", folderId).With("@account_id", accountId).With(from.Name, from.Value).With("@limit", Math.Min(limit, MaxPage));
            return await ReadMessagesAsync(db, command);
        }, cancellationToken);
    }

    public Task<Stream?> OpenMessageAsync(long accountId, long folderId, long uid, CancellationToken cancellationToken) =>
        ReadAsync<Stream?>(async db =>
        {
            await using var command = db.Command(MailSql.OpenMessage)
                .With("@folder_id", folderId).With("@uid", uid).With("@account_id", accountId);
            await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
            if (!await reader.ReadAsync(CancellationToken.None))
            {
                return null;
            }

            // The prefix is small: it is copied in front of the body, which is read once and not copied again.
            var prefix = (byte[])reader.GetValue(0);
            var content = (byte[])reader.GetValue(1);
            return prefix.Length == 0 ? new MemoryStream(content, writable: false) : new PrefixedStream(prefix, content);
        }, cancellationToken);

    public Task<IReadOnlyList<MailMessageInfo>> StoreFlagsAsync(long accountId, long folderId, IReadOnlyCollection<long> uids, FlagChange change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(uids);
        ArgumentNullException.ThrowIfNull(change);
        var keywords = MailKeys.Keywords(change.Keywords);
        var flags = change.Flags & MailKeys.AllFlags;
        return WriteAsync(async db =>
        {
            if (uids.Count == 0 || !await LockAccountAsync(db, accountId) || await TakeModSeqAsync(db, accountId, folderId) is not { } modSeq)
            {
                return (IReadOnlyList<MailMessageInfo>)[];
            }

            var changed = 0;
            if (change.Mode != FlagChangeMode.Replace && keywords.Count == 0)
            {
                // System flags only: one statement for the whole set.
                await using var command = db.Command(change.Mode == FlagChangeMode.Add ? MailSql.AddFlags : MailSql.RemoveFlags)
                    .With("@flags", (int)flags).With("@modseq", modSeq).With("@folder_id", folderId)
                    .With("@account_id", accountId).With("@uids", db.Ids(uids));
                changed = await command.ExecuteNonQueryAsync(CancellationToken.None);
            }
            else
            {
                foreach (var message in await ListUidsAsync(db, accountId, folderId, uids))
                {
                    var (newFlags, newKeywords) = MailKeys.Apply(change.Mode, message.Flags, message.Keywords, flags, keywords);
                    if (newFlags == message.Flags && newKeywords.SequenceEqual(message.Keywords, StringComparer.Ordinal))
                    {
                        continue;
                    }

                    await using var update = db.Command(MailSql.SetFlags)
                        .With("@flags", (int)newFlags).With("@keywords", string.Join(' ', newKeywords))
                        .With("@modseq", modSeq).With("@folder_id", folderId).With("@uid", message.Uid);
                    changed += await update.ExecuteNonQueryAsync(CancellationToken.None);
                }
            }

            if (changed == 0)
            {
                // Nothing changed: give the mod-sequence back (the account lock keeps anyone else from taking one).
                await using var undo = db.Command(MailSql.UndoModSeq).With("@folder_id", folderId).With("@modseq", modSeq);
                await undo.ExecuteNonQueryAsync(CancellationToken.None);
            }
            else
            {
                db.Changes.Add(new MailboxChange(accountId, folderId));
            }

            return await ListUidsAsync(db, accountId, folderId, uids);
        }, 0, cancellationToken);
    }

    public Task<CopyResult> CopyMessagesAsync(long accountId, long folderId, IReadOnlyCollection<long> uids, long targetFolderId, CancellationToken cancellationToken) =>
        CopyOrMoveAsync(accountId, folderId, uids, targetFolderId, move: false, cancellationToken);

    public Task<CopyResult> MoveMessagesAsync(long accountId, long folderId, IReadOnlyCollection<long> uids, long targetFolderId, CancellationToken cancellationToken) =>
        CopyOrMoveAsync(accountId, folderId, uids, targetFolderId, move: true, cancellationToken);

    private Task<CopyResult> CopyOrMoveAsync(long accountId, long folderId, IReadOnlyCollection<long> uids, long targetFolderId, bool move, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(uids);
        return WriteAsync(async db =>
        {
            var usage = await LockAccountUsageAsync(db, accountId);
            MailFolder? target;
            await using (var command = db.Command(MailSql.GetFolderById).With("@account_id", accountId).With("@folder_id", targetFolderId))
            {
                target = (await ReadFoldersAsync(command)).FirstOrDefault();
            }

            if (usage is null || target is null)
            {
                return new CopyResult { Status = CopyStatus.NoTarget };
            }

            var sources = new List<(long Uid, long Size)>();
            await using (var command = db.Command(MailSql.SourceSizes)
                .With("@folder_id", folderId).With("@account_id", accountId).With("@uids", db.Ids(uids)))
            await using (var reader = await command.ExecuteReaderAsync(CancellationToken.None))
            {
                while (await reader.ReadAsync(CancellationToken.None))
                {
                    sources.Add((reader.GetInt64(0), reader.GetInt64(1)));
                }
            }

            var uidValidity = MailKeys.UidValidity(target.Id);
            if (sources.Count == 0)
            {
                return new CopyResult { Status = CopyStatus.Copied, UidValidity = uidValidity };
            }

            var size = sources.Sum(s => s.Size);
            if (!move && usage.Value.Quota is { } quota && usage.Value.Used + size > quota)
            {
                return new CopyResult { Status = CopyStatus.OverQuota, UidValidity = uidValidity };
            }

            var sourceUids = sources.Select(s => s.Uid).ToList();
            var baseUid = await CopyAsync(db, accountId, folderId, sourceUids, target.Id);
            if (move)
            {
                await using var delete = db.Command(MailSql.DeleteMessages)
                    .With("@folder_id", folderId).With("@account_id", accountId)
                    .With("@all_uids", false).With("@uids", db.Ids(sourceUids)).With("@only_deleted", false);
                await delete.ExecuteNonQueryAsync(CancellationToken.None);
                await TakeModSeqAsync(db, accountId, folderId);
                db.Changes.Add(new MailboxChange(accountId, folderId));
            }
            else
            {
                await AddUsageAsync(db, accountId, size);
            }

            return new CopyResult
            {
                Status = CopyStatus.Copied,
                UidValidity = uidValidity,
                Uids = [.. sourceUids.Select((uid, i) => (uid, baseUid + i))],
            };
        }, 0, cancellationToken);
    }

    public Task<AppendResult> AppendAsync(long accountId, long folderId, MessageAppend message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        var keywords = MailKeys.Keywords(message.Keywords);
        var content = message.Content;
        return WriteAsync(async db =>
        {
            var usage = await LockAccountUsageAsync(db, accountId);
            if (usage is null)
            {
                return new AppendResult { Status = AppendStatus.NoFolder };
            }

            if (usage.Value.Quota is { } quota && usage.Value.Used + content.Length > quota)
            {
                return new AppendResult { Status = AppendStatus.OverQuota };
            }

            var (uid, modSeq) = await TakeUidsAsync(db, accountId, folderId, 1);
            if (uid == 0)
            {
                return new AppendResult { Status = AppendStatus.NoFolder };
            }

            var bodyId = await db.InsertBodyAsync(null, content);
            await InsertMessageAsync(db, folderId, uid, accountId, bodyId, [], content.Length,
                message.Flags & MailKeys.AllFlags, string.Join(' ', keywords), message.InternalDate, modSeq);
            await AddUsageAsync(db, accountId, content.Length);
            db.Changes.Add(new MailboxChange(accountId, folderId));
            return new AppendResult { Status = AppendStatus.Appended, UidValidity = MailKeys.UidValidity(folderId), Uid = uid };
        }, content.Length, cancellationToken);
    }

    public Task<IReadOnlyList<long>> ExpungeAsync(long accountId, long folderId, IReadOnlyCollection<long>? uids, CancellationToken cancellationToken) =>
        RemoveAsync(accountId, folderId, uids, onlyDeleted: true, cancellationToken);

    public Task<IReadOnlyList<long>> DeleteMessagesAsync(long accountId, long folderId, IReadOnlyCollection<long> uids, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(uids);
        return RemoveAsync(accountId, folderId, uids, onlyDeleted: false, cancellationToken);
    }

    private Task<IReadOnlyList<long>> RemoveAsync(long accountId, long folderId, IReadOnlyCollection<long>? uids, bool onlyDeleted, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            if (uids is { Count: 0 } || !await LockAccountAsync(db, accountId))
            {
                return (IReadOnlyList<long>)[];
            }

            await using var command = db.Command(MailSql.DeleteMessages)
                .With("@folder_id", folderId).With("@account_id", accountId)
                .With("@all_uids", uids is null).With("@uids", db.Ids(uids ?? [])).With("@only_deleted", onlyDeleted);
            var removed = await ReleaseDeletedAsync(db, accountId, command);
            if (removed.Count > 0)
            {
                await TakeModSeqAsync(db, accountId, folderId);
                db.Changes.Add(new MailboxChange(accountId, folderId));
            }

            return removed;
        }, 0, cancellationToken);

    // ---- Change signal, POP3 lock, health -------------------------------------------------------------------------

    public MailboxWatch WatchChanges(long accountId)
    {
        var watch = Hub.Subscribe(accountId);
        OnWatched();
        return watch;
    }

    /// <summary>Called after each new watch (the PostgreSQL store starts listening then).</summary>
    protected virtual void OnWatched()
    {
    }

    public Task<bool> TryLockMaildropAsync(long accountId, Guid holderId, DateTimeOffset now, DateTimeOffset expiresAt, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            await using var command = db.Command(MailSql.LockMaildrop)
                .With("@account_id", accountId).With("@holder", db.Uuid(holderId))
                .With("@expires_at", db.Time(expiresAt)).With("@now", db.Time(now));
            return await command.ExecuteScalarAsync(CancellationToken.None) is not null;
        }, 0, cancellationToken);

    public Task ReleaseMaildropAsync(long accountId, Guid holderId, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            await using var command = db.Command(MailSql.ReleaseMaildrop).With("@account_id", accountId).With("@holder", db.Uuid(holderId));
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, 0, cancellationToken);

    public Task<int> PurgeDeliveryKeysAsync(DateTimeOffset olderThan, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        return WriteAsync(async db =>
        {
            await using var command = db.Command(MailSql.PurgeDeliveryKeys).With("@before", db.Time(olderThan)).With("@limit", limit);
            return await command.ExecuteNonQueryAsync(CancellationToken.None);
        }, 0, cancellationToken);
    }

    public Task PingAsync(CancellationToken cancellationToken) =>
        ReadAsync(async db =>
        {
            await using var command = db.Command(MailSql.Ping);
            return await command.ExecuteScalarAsync(CancellationToken.None);
        }, cancellationToken);

    // ---- Pieces --------------------------------------------------------------------------------------------------

    private static async Task<MailAccount?> ResolveAsync(MailDb db, string key, string catchAll)
    {
        await using var command = db.Command(MailSql.Resolve).With("@key", key).With("@catch_all", catchAll);
        return await ReadAccountAsync(db, command);
    }

    private static async Task<MailAccount?> ReadAccountAsync(MailDb db, DbCommand command)
    {
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
        return await reader.ReadAsync(CancellationToken.None) ? ReadAccount(db, reader) : null;
    }

    private static MailAccount ReadAccount(MailDb db, DbDataReader reader) => new()
    {
        Id = reader.GetInt64(0),
        Address = reader.GetString(1),
        PasswordHash = reader.GetString(2),
        Disabled = reader.GetBoolean(3),
        QuotaBytes = reader.IsDBNull(4) ? null : reader.GetInt64(4),
        UsedBytes = reader.GetInt64(5),
        CreatedAt = db.ReadTime(reader, 6),
    };

    private static async Task<bool> LockAccountAsync(MailDb db, long accountId) => await LockAccountUsageAsync(db, accountId) is not null;

    private static async Task<(long Used, long? Quota, bool Disabled)?> LockAccountUsageAsync(MailDb db, long accountId)
    {
        await using var command = db.Command(MailSql.LockAccount).With("@account_id", accountId);
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
        if (!await reader.ReadAsync(CancellationToken.None))
        {
            return null;
        }

        return (reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1), reader.GetBoolean(2));
    }

    private static async Task AddUsageAsync(MailDb db, long accountId, long delta)
    {
        if (delta == 0)
        {
            return;
        }

        await using var command = db.Command(MailSql.AddUsage).With("@delta", delta).With("@account_id", accountId);
        await command.ExecuteNonQueryAsync(CancellationToken.None);
    }

    private static async Task<long?> InsertFolderAsync(MailDb db, long accountId, string name, SpecialUse use)
    {
        await using var command = db.Command(MailSql.InsertFolder)
            .With("@account_id", accountId).With("@name", name).With("@special_use", (int)use).With("@subscribed", true);
        return await command.ScalarInt64Async();
    }

    private static async Task<MailFolder?> GetFolderAsync(MailDb db, long accountId, string name)
    {
        await using var command = db.Command(MailSql.GetFolder).With("@account_id", accountId).With("@name", name);
        return (await ReadFoldersAsync(command)).FirstOrDefault();
    }

    private static async Task<List<MailFolder>> ReadFoldersAsync(DbCommand command)
    {
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
        var folders = new List<MailFolder>();
        while (await reader.ReadAsync(CancellationToken.None))
        {
            var id = reader.GetInt64(0);
            folders.Add(new MailFolder
            {
                Id = id,
                AccountId = reader.GetInt64(1),
                Name = reader.GetString(2),
                SpecialUse = (SpecialUse)reader.GetInt32(3),
                Subscribed = reader.GetBoolean(4),
                UidValidity = MailKeys.UidValidity(id),
                UidNext = reader.GetInt64(5),
                HighestModSeq = reader.GetInt64(6),
            });
        }

        return folders;
    }

    /// <summary>Takes <paramref name="count"/> UIDs and a mod-sequence of the folder; (0, 0) when it is not the account's.</summary>
    private static async Task<(long FirstUid, long ModSeq)> TakeUidsAsync(MailDb db, long accountId, long folderId, long count)
    {
        await using var command = db.Command(MailSql.TakeUids).With("@count", count).With("@folder_id", folderId).With("@account_id", accountId);
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
        return await reader.ReadAsync(CancellationToken.None) ? (reader.GetInt64(0), reader.GetInt64(1)) : (0, 0);
    }

    private static async Task<long?> TakeModSeqAsync(MailDb db, long accountId, long folderId)
    {
        await using var command = db.Command(MailSql.TakeModSeq).With("@folder_id", folderId).With("@account_id", accountId);
        return await command.ScalarInt64Async();
    }

    /// <summary>Copies the messages of <paramref name="uids"/> (all existing) to the target; returns the first new UID.</summary>
    private static async Task<long> CopyAsync(MailDb db, long accountId, long folderId, IReadOnlyCollection<long> uids, long targetId)
    {
        var (baseUid, modSeq) = await TakeUidsAsync(db, accountId, targetId, uids.Count);
        if (uids.Count > 0)
        {
            await using var command = db.Command(MailSql.CopyMessages)
                .With("@target_id", targetId).With("@base_uid", baseUid).With("@modseq", modSeq)
                .With("@folder_id", folderId).With("@account_id", accountId).With("@uids", db.Ids(uids));
            await command.ExecuteNonQueryAsync(CancellationToken.None);
            db.Changes.Add(new MailboxChange(accountId, targetId));
        }

        return baseUid;
    }

    private static async Task<List<long>> AllUidsAsync(MailDb db, long accountId, long folderId)
    {
        var uids = new List<long>();
        long from = 1;
        while (true)
        {
            await using var command = db.Command(MailSql.ListMessages)
                .With("@folder_id", folderId).With("@account_id", accountId).With("@from_uid", from).With("@limit", MaxPage);
            var page = await ReadMessagesAsync(db, command);
            uids.AddRange(page.Select(m => m.Uid));
            if (page.Count < MaxPage)
            {
                return uids;
            }

            from = page[^1].Uid + 1;
        }
    }

    private static async Task<IReadOnlyList<MailMessageInfo>> ListUidsAsync(MailDb db, long accountId, long folderId, IReadOnlyCollection<long> uids)
    {
        await using var command = db.Command(MailSql.ListUids)
            .With("@folder_id", folderId).With("@account_id", accountId).With("@uids", db.Ids(uids));
        return await ReadMessagesAsync(db, command);
    }

    private static async Task<IReadOnlyList<MailMessageInfo>> ReadMessagesAsync(MailDb db, DbCommand command)
    {
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
        var list = new List<MailMessageInfo>();
        while (await reader.ReadAsync(CancellationToken.None))
        {
            var keywords = reader.GetString(2);
            list.Add(new MailMessageInfo
            {
                Uid = reader.GetInt64(0),
                Flags = (MessageFlags)reader.GetInt32(1),
                Keywords = keywords.Length == 0 ? [] : keywords.Split(' '),
                InternalDate = db.ReadTime(reader, 3),
                Size = reader.GetInt64(4),
                ModSeq = reader.GetInt64(5),
            });
        }

        return list;
    }

    /// <summary>The body of a spool message, stored once: an earlier delivery's row when there is one.</summary>
    private static async Task<long> SpoolBodyAsync(MailDb db, object spoolId, ReadOnlyMemory<byte> body)
    {
        await using (var find = db.Command(MailSql.BodyBySpoolMessage).With("@spool_message_id", spoolId))
        await using (var reader = await find.ExecuteReaderAsync(CancellationToken.None))
        {
            if (await reader.ReadAsync(CancellationToken.None))
            {
                return reader.GetInt64(0);
            }
        }

        return await db.InsertBodyAsync(spoolId, body);
    }

    private static async Task InsertMessageAsync(
        MailDb db, long folderId, long uid, long accountId, long bodyId, byte[] prefix, long size, MessageFlags flags, string keywords, DateTimeOffset internalDate, long modSeq)
    {
        await using var command = db.Command(MailSql.InsertMessage)
            .With("@folder_id", folderId).With("@uid", uid).With("@account_id", accountId).With("@body_id", bodyId)
            .With("@prefix", prefix).With("@size", size).With("@flags", (int)flags).With("@keywords", keywords)
            .With("@internal_date", db.Time(internalDate)).With("@modseq", modSeq);
        await command.ExecuteNonQueryAsync(CancellationToken.None);
    }

    /// <summary>Runs a DELETE … RETURNING uid, size, body_id; gives the size back to the quota and drops bodies left
    /// without a message. Returns the removed UIDs, ascending.</summary>
    private static async Task<IReadOnlyList<long>> ReleaseDeletedAsync(MailDb db, long accountId, DbCommand delete)
    {
        var uids = new List<long>();
        var bodies = new HashSet<long>();
        long size = 0;
        await using (var reader = await delete.ExecuteReaderAsync(CancellationToken.None))
        {
            while (await reader.ReadAsync(CancellationToken.None))
            {
                uids.Add(reader.GetInt64(0));
                size += reader.GetInt64(1);
                bodies.Add(reader.GetInt64(2));
            }
        }

        if (bodies.Count > 0)
        {
            await using var orphans = db.Command(MailSql.DeleteOrphanBodies).With("@body_ids", db.Ids(bodies));
            await orphans.ExecuteNonQueryAsync(CancellationToken.None);
        }

        await AddUsageAsync(db, accountId, -size);
        uids.Sort();
        return uids;
    }
}

/// <summary>How addresses, folder names, keywords and flags are normalised: the same for both stores.</summary>
internal static class MailKeys
{
    public const MessageFlags AllFlags = MessageFlags.Seen | MessageFlags.Answered | MessageFlags.Flagged | MessageFlags.Deleted | MessageFlags.Draft;

    /// <summary>An account's key: <see cref="NormalizedAddress.ComparisonKey"/> (local part lower-cased, A-label domain).</summary>
    public static string Address(string address)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(address);
        var trimmed = address.Trim();
        if (!NormalizedAddress.TryParse(trimmed, out var normalized))
        {
            throw new ArgumentException($"'{address}' is not an address.", nameof(address));
        }

        return normalized.ComparisonKey;
    }

    /// <summary>An alias's key: an address key, or "@" and the domain for a catch-all.</summary>
    public static string Alias(string address)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(address);
        var trimmed = address.Trim();
        if (trimmed.StartsWith('@'))
        {
            return NormalizedAddress.TryNormalizeDomain(trimmed[1..], out var domain)
                ? "@" + domain
                : throw new ArgumentException($"'{address}' is not a domain's catch-all (@domain).", nameof(address));
        }

        return Address(trimmed);
    }

    /// <summary>A recipient's key and its domain's catch-all key.</summary>
    public static (string Key, string CatchAll) Recipient(string address)
    {
        var key = Address(address);
        return (key, key[key.LastIndexOf('@')..]);
    }

    /// <summary>A folder name as stored: "INBOX" in any case is INBOX (RFC 9051 §5.1).</summary>
    public static string FolderName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Equals(MailFolder.Inbox, StringComparison.OrdinalIgnoreCase) ? MailFolder.Inbox : name;
    }

    /// <summary>A name a folder may be created or renamed to: not empty, no empty level, no control characters.</summary>
    public static string NewFolderName(string name)
    {
        var folder = FolderName(name);
        if (folder.Length == 0 || folder.Length > 1000 || folder[0] == MailFolder.Delimiter || folder[^1] == MailFolder.Delimiter
            || folder.Contains("//", StringComparison.Ordinal) || folder.Any(char.IsControl))
        {
            throw new ArgumentException($"'{name}' is not a valid folder name.", nameof(name));
        }

        return folder;
    }

    /// <summary>Keywords as stored: atoms without spaces or system-flag backslashes, distinct case-insensitively.</summary>
    public static IReadOnlyList<string> Keywords(IReadOnlyList<string> keywords)
    {
        ArgumentNullException.ThrowIfNull(keywords);
        foreach (var keyword in keywords)
        {
            if (string.IsNullOrEmpty(keyword) || keyword.Any(c => c <= ' ' || c == '\\' || c > '~' || c is '(' or ')' or '{' or '%' or '*' or '"' or ']'))
            {
                throw new ArgumentException($"'{keyword}' is not a keyword (RFC 9051 flag-keyword).", nameof(keywords));
            }
        }

        return [.. keywords.Distinct(StringComparer.OrdinalIgnoreCase)];
    }

    public static (MessageFlags Flags, IReadOnlyList<string> Keywords) Apply(
        FlagChangeMode mode, MessageFlags flags, IReadOnlyList<string> keywords, MessageFlags change, IReadOnlyList<string> changeKeywords) => mode switch
        {
            FlagChangeMode.Replace => (change, changeKeywords),
            FlagChangeMode.Add => (flags | change, [.. keywords.Concat(changeKeywords).Distinct(StringComparer.OrdinalIgnoreCase)]),
            _ => (flags & ~change, [.. keywords.Where(k => !changeKeywords.Contains(k, StringComparer.OrdinalIgnoreCase))]),
        };

    /// <summary>A folder's UIDVALIDITY: its id, which is never reused (nonzero, 32 bits).</summary>
    public static uint UidValidity(long folderId) => (uint)((folderId - 1) % uint.MaxValue) + 1;
}
