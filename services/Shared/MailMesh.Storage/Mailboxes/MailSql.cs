namespace MailMesh.Storage.Mailboxes;

/// <summary>The mail store's statements, once for both stores (see <see cref="MailDb"/> for the SQLite translation).</summary>
internal static class MailSql
{
    public const string AccountColumns = "a.id, a.address, a.password_hash, a.disabled, a.quota_bytes, a.used_bytes, a.created_at";

    public const string GetAccount = $"SELECT {AccountColumns} FROM mailbox.accounts a WHERE a.address_key = @key";

    // The account itself, else an alias of the exact address, else the domain's catch-all: three primary-key probes.
    public const string Resolve =
        $"""
        SELECT {AccountColumns}, 0 AS rank FROM mailbox.accounts a WHERE a.address_key = @key
        UNION ALL
        SELECT {AccountColumns}, 1 AS rank FROM mailbox.aliases l JOIN mailbox.accounts a ON a.id = l.account_id WHERE l.address_key = @key
        UNION ALL
        SELECT {AccountColumns}, 2 AS rank FROM mailbox.aliases l JOIN mailbox.accounts a ON a.id = l.account_id WHERE l.address_key = @catch_all
        ORDER BY rank
        LIMIT 1
        """;

    public const string AliasExists = "SELECT 1 FROM mailbox.aliases WHERE address_key = @key";

    public const string InsertAccount =
        """
        INSERT INTO mailbox.accounts (address, address_key, password_hash, disabled, quota_bytes, used_bytes, created_at)
        VALUES (@address, @key, @password_hash, @disabled, @quota_bytes, 0, @created_at)
        ON CONFLICT (address_key) DO NOTHING
        RETURNING id
        """;

    public const string InsertFolder =
        """
        INSERT INTO mailbox.folders (account_id, name, special_use, subscribed, uid_next, highest_modseq)
        VALUES (@account_id, @name, @special_use, @subscribed, 1, 1)
        ON CONFLICT (account_id, name) DO NOTHING
        RETURNING id
        """;

    public const string SetPasswordHash = "UPDATE mailbox.accounts SET password_hash = @value WHERE address_key = @key";

    public const string SetQuota = "UPDATE mailbox.accounts SET quota_bytes = @value WHERE address_key = @key";

    public const string SetDisabled = "UPDATE mailbox.accounts SET disabled = @value WHERE address_key = @key";

    public const string ListAccounts =
        $"SELECT {AccountColumns} FROM mailbox.accounts a WHERE a.address_key > @after ORDER BY a.address_key LIMIT @limit";

    public const string AccountIdByKey = "SELECT id FROM mailbox.accounts WHERE address_key = @key";

    public const string UpsertAlias =
        """
        INSERT INTO mailbox.aliases (address_key, address, account_id) VALUES (@key, @address, @account_id)
        ON CONFLICT (address_key) DO UPDATE SET address = excluded.address, account_id = excluded.account_id
        """;

    public const string RemoveAlias = "DELETE FROM mailbox.aliases WHERE address_key = @key";

    public const string ListAliases =
        """
        SELECT l.address, a.address FROM mailbox.aliases l JOIN mailbox.accounts a ON a.id = l.account_id
        ORDER BY l.address_key LIMIT @limit
        """;

    // Every write of an account starts here: the row lock serialises the account's writers (quota, UIDs, flags) and
    // fixes one lock order (account, then its folders), so they cannot deadlock.
    public const string LockAccount = "SELECT used_bytes, quota_bytes, disabled FROM mailbox.accounts WHERE id = @account_id FOR UPDATE";

    public const string AddUsage = "UPDATE mailbox.accounts SET used_bytes = used_bytes + @delta WHERE id = @account_id";

    public const string FolderColumns = "f.id, f.account_id, f.name, f.special_use, f.subscribed, f.uid_next, f.highest_modseq";

    public const string ListFolders = $"SELECT {FolderColumns} FROM mailbox.folders f WHERE f.account_id = @account_id";

    public const string GetFolder = $"SELECT {FolderColumns} FROM mailbox.folders f WHERE f.account_id = @account_id AND f.name = @name";

    public const string GetFolderById = $"SELECT {FolderColumns} FROM mailbox.folders f WHERE f.account_id = @account_id AND f.id = @folder_id";

    public const string FolderCounts =
        """
        SELECT count(*),
               coalesce(sum(CASE WHEN flags & 1 = 0 THEN 1 ELSE 0 END), 0),
               coalesce(sum(CASE WHEN flags & 8 <> 0 THEN 1 ELSE 0 END), 0),
               CAST(coalesce(sum(size), 0) AS bigint)
        FROM mailbox.messages WHERE folder_id = @folder_id
        """;

    // UIDs and the mod-sequence of a change, under the folder's row lock: concurrent writers of one folder commit in
    // the order they took them, so UIDs become visible in ascending order (RFC 9051 §2.3.1.1).
    public const string TakeUids =
        """
        UPDATE mailbox.folders SET uid_next = uid_next + @count, highest_modseq = highest_modseq + 1
        WHERE id = @folder_id AND account_id = @account_id
        RETURNING uid_next - @count, highest_modseq
        """;

    public const string TakeModSeq =
        """
        UPDATE mailbox.folders SET highest_modseq = highest_modseq + 1
        WHERE id = @folder_id AND account_id = @account_id
        RETURNING highest_modseq
        """;

    public const string DeleteFolder = "DELETE FROM mailbox.folders WHERE id = @folder_id";

    public const string RenameConflicts =
        """
        SELECT count(*) FROM mailbox.folders
        WHERE account_id = @account_id AND (name = @new_name OR substr(name, 1, length(@new_prefix)) = @new_prefix)
        """;

    public const string RenameFolders =
        """
        UPDATE mailbox.folders SET name = @new_name || substr(name, length(@old_name) + 1)
        WHERE account_id = @account_id AND (name = @old_name OR substr(name, 1, length(@old_prefix)) = @old_prefix)
        """;

    public const string SetSubscribed = "UPDATE mailbox.folders SET subscribed = @subscribed WHERE account_id = @account_id AND name = @name";

    public const string MessageColumns = "uid, flags, keywords, internal_date, size, modseq";

    public const string ListMessages =
        $"""
        SELECT {MessageColumns} FROM mailbox.messages
        WHERE folder_id = @folder_id AND account_id = @account_id AND uid >= @from_uid
        ORDER BY uid LIMIT @limit
        """;

    public const string ListChanged =
        $"""
        SELECT {MessageColumns} FROM mailbox.messages
        WHERE folder_id = @folder_id AND account_id = @account_id AND modseq > @since
        ORDER BY uid LIMIT @limit
        """;

    public const string ListUids =
        $"""
        SELECT {MessageColumns} FROM mailbox.messages
        WHERE folder_id = @folder_id AND account_id = @account_id AND uid = ANY(@uids)
        ORDER BY uid
        """;

    public const string OpenMessage =
        """
        SELECT m.prefix, b.content FROM mailbox.messages m JOIN mailbox.bodies b ON b.id = m.body_id
        WHERE m.folder_id = @folder_id AND m.uid = @uid AND m.account_id = @account_id
        """;

    // STORE of system flags only: one statement for the whole set, touching only messages it changes.
    public const string AddFlags =
        """
        UPDATE mailbox.messages SET flags = flags | @flags, modseq = @modseq
        WHERE folder_id = @folder_id AND account_id = @account_id AND uid = ANY(@uids) AND (flags | @flags) <> flags
        """;

    public const string RemoveFlags =
        """
        UPDATE mailbox.messages SET flags = flags & ~@flags, modseq = @modseq
        WHERE folder_id = @folder_id AND account_id = @account_id AND uid = ANY(@uids) AND (flags & @flags) <> 0
        """;

    public const string SetFlags =
        """
        UPDATE mailbox.messages SET flags = @flags, keywords = @keywords, modseq = @modseq
        WHERE folder_id = @folder_id AND uid = @uid
        """;

    public const string UndoModSeq =
        "UPDATE mailbox.folders SET highest_modseq = highest_modseq - 1 WHERE id = @folder_id AND highest_modseq = @modseq";

    public const string SourceSizes =
        """
        SELECT uid, size FROM mailbox.messages
        WHERE folder_id = @folder_id AND account_id = @account_id AND uid = ANY(@uids)
        ORDER BY uid
        """;

    // The k-th source UID (ascending) becomes base + k - 1.
    public const string CopyMessages =
        """
        INSERT INTO mailbox.messages (folder_id, uid, account_id, body_id, prefix, size, flags, keywords, internal_date, modseq)
        SELECT @target_id, @base_uid + row_number() OVER (ORDER BY uid) - 1, account_id, body_id, prefix, size, flags, keywords, internal_date, @modseq
        FROM mailbox.messages
        WHERE folder_id = @folder_id AND account_id = @account_id AND uid = ANY(@uids)
        """;

    public const string InsertBody =
        "INSERT INTO mailbox.bodies (spool_message_id, content, size) VALUES (@spool_message_id, @content, @size) RETURNING id";

    public const string BodyBySpoolMessage = "SELECT id, size FROM mailbox.bodies WHERE spool_message_id = @spool_message_id";

    public const string InsertMessage =
        """
        INSERT INTO mailbox.messages (folder_id, uid, account_id, body_id, prefix, size, flags, keywords, internal_date, modseq)
        VALUES (@folder_id, @uid, @account_id, @body_id, @prefix, @size, @flags, @keywords, @internal_date, @modseq)
        """;

    public const string DeleteMessages =
        """
        DELETE FROM mailbox.messages
        WHERE folder_id = @folder_id AND account_id = @account_id
          AND (@all_uids OR uid = ANY(@uids)) AND (NOT @only_deleted OR flags & 8 <> 0)
        RETURNING uid, size, body_id
        """;

    public const string DeleteFolderMessages =
        "DELETE FROM mailbox.messages WHERE folder_id = @folder_id RETURNING uid, size, body_id";

    // A body goes with its last message; one shared by another message (a copy, another recipient) stays.
    public const string DeleteOrphanBodies =
        """
        DELETE FROM mailbox.bodies
        WHERE id = ANY(@body_ids) AND NOT EXISTS (SELECT 1 FROM mailbox.messages m WHERE m.body_id = mailbox.bodies.id)
        """;

    public const string FindDeliveries =
        """
        SELECT recipient_id, account_id, folder_id, uid FROM mailbox.deliveries
        WHERE spool_message_id = @spool_message_id AND recipient_id = ANY(@recipient_ids)
        """;

    public const string InsertDelivery =
        """
        INSERT INTO mailbox.deliveries (spool_message_id, recipient_id, account_id, folder_id, uid, delivered_at)
        VALUES (@spool_message_id, @recipient_id, @account_id, @folder_id, @uid, @delivered_at)
        """;

    public const string InboxOf = "SELECT id FROM mailbox.folders WHERE account_id = @account_id AND name = 'INBOX'";

    /// <summary>The account's first folder with a SPECIAL-USE attribute (\Junk for quarantined mail).</summary>
    public const string SpecialUseFolderOf = "SELECT id FROM mailbox.folders WHERE account_id = @account_id AND special_use = @special_use ORDER BY id LIMIT 1";

    public const string LockMaildrop =
        """
        INSERT INTO mailbox.maildrop_locks AS l (account_id, holder, expires_at) VALUES (@account_id, @holder, @expires_at)
        ON CONFLICT (account_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
        WHERE l.holder = excluded.holder OR l.expires_at <= @now
        RETURNING account_id
        """;

    public const string ReleaseMaildrop = "DELETE FROM mailbox.maildrop_locks WHERE account_id = @account_id AND holder = @holder";

    public const string PurgeDeliveryKeys =
        """
        DELETE FROM mailbox.deliveries
        WHERE (spool_message_id, recipient_id) IN (
            SELECT spool_message_id, recipient_id FROM mailbox.deliveries WHERE delivered_at < @before LIMIT @limit)
        """;

    public const string Ping = "SELECT 1";
}
