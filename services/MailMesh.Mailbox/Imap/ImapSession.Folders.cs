using System.Text.RegularExpressions;
using MailMesh.Storage;

namespace MailMesh.Mailbox.Imap;

/// <summary>The mailbox commands (RFC 9051 §6.3): SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS, APPEND.</summary>
internal sealed partial class ImapSession
{
    private const string SystemFlags = @"\Answered \Flagged \Deleted \Seen \Draft";

    private async Task ExecuteFolderOrMessageCommandAsync(ImapCommand c)
    {
        var store = _services.Store;
        var account = _account!.Id;
        switch (c.Name)
        {
            case "SELECT" or "EXAMINE":
                await SelectAsync(c, readOnly: c.Name == "EXAMINE");
                return;
            case "CREATE":
                {
                    var name = c.Mailbox!.TrimEnd(MailFolder.Delimiter);
                    if (name.Length == 0 || name.Equals(MailFolder.Inbox, StringComparison.OrdinalIgnoreCase))
                    {
                        W.Raw(c.Tag + " NO [ALREADYEXISTS] Mailbox already exists\r\n");
                        return;
                    }

                    var created = await store.CreateFolderAsync(account, name, SpecialUse.None, Closed);
                    W.Raw(c.Tag + (created is null ? " NO [ALREADYEXISTS] Mailbox already exists\r\n" : " OK CREATE completed\r\n"));
                    return;
                }

            case "DELETE":
                {
                    if (c.Mailbox == MailFolder.Inbox)
                    {
                        W.Raw(c.Tag + " NO [CANNOT] INBOX cannot be deleted\r\n");
                        return;
                    }

                    if (_selected is not null && _selected.Name == c.Mailbox)
                    {
                        Deselect();
                    }

                    var deleted = await store.DeleteFolderAsync(account, c.Mailbox!, Closed);
                    W.Raw(c.Tag + (deleted ? " OK DELETE completed\r\n" : " NO [NONEXISTENT] No such mailbox\r\n"));
                    return;
                }

            case "RENAME":
                {
                    var result = await store.RenameFolderAsync(account, c.Mailbox!, c.NewName!.TrimEnd(MailFolder.Delimiter), Closed);
                    W.Raw(c.Tag + result switch
                    {
                        FolderRenameResult.Renamed => " OK RENAME completed\r\n",
                        FolderRenameResult.AlreadyExists => " NO [ALREADYEXISTS] Mailbox already exists\r\n",
                        _ => " NO [NONEXISTENT] No such mailbox\r\n",
                    });
                    return;
                }

            case "SUBSCRIBE" or "UNSUBSCRIBE":
                {
                    var done = await store.SetSubscribedAsync(account, c.Mailbox!, c.Name == "SUBSCRIBE", Closed);
                    W.Raw(c.Tag + (done ? " OK " + c.Name + " completed\r\n" : " NO [NONEXISTENT] No such mailbox\r\n"));
                    return;
                }

            case "LIST" or "LSUB":
                await ListAsync(c);
                return;
            case "STATUS":
                await StatusAsync(c);
                return;
            case "APPEND":
                await AppendAsync(c);
                return;
            default:
                await ExecuteMessageCommandAsync(c);
                return;
        }
    }

    private async Task SelectAsync(ImapCommand c, bool readOnly)
    {
        // RFC 9051 §6.3.2: a SELECT first deselects, even when it fails.
        if (_selected is not null)
        {
            Deselect();
            if (_rev2)
            {
                W.Raw("* OK [CLOSED] Previous mailbox closed\r\n");
            }
        }

        var folder = await _services.Store.GetFolderAsync(_account!.Id, c.Mailbox!, Closed);
        if (folder is null)
        {
            W.Raw(c.Tag + " NO [NONEXISTENT] No such mailbox\r\n");
            return;
        }

        _selected = folder;
        _readOnly = readOnly;
        _state = ImapState.Selected;

        // Drain signals from before the listing: the listing sees their changes.
        while (_watch!.TryRead(out _))
        {
        }

        _messages = await ListAllAsync(folder);
        var w = W;
        w.Raw("* FLAGS (" + SystemFlags + ")\r\n");
        w.Raw("* OK [PERMANENTFLAGS (" + (readOnly ? string.Empty : SystemFlags + @" \*") + ")] Flags permitted\r\n");
        w.Raw("* ").Number(_messages.Count).Raw(" EXISTS\r\n");
        if (!_rev2)
        {
            // IMAP4rev1 requires RECENT; \Recent is not kept (RFC 9051 removed it).
            w.Raw("* 0 RECENT\r\n");
        }

        w.Raw("* OK [UIDVALIDITY ").Number(folder.UidValidity).Raw("] UIDs valid\r\n");
        w.Raw("* OK [UIDNEXT ").Number(Math.Max(folder.UidNext, _messages.Count > 0 ? _messages[^1].Uid + 1 : 1)).Raw("] Predicted next UID\r\n");
        if (_rev2)
        {
            w.Raw("* LIST () \"" + MailFolder.Delimiter + "\" ").AString(folder.Name).Crlf();
        }

        W.Raw(c.Tag + (readOnly ? " OK [READ-ONLY] EXAMINE completed\r\n" : " OK [READ-WRITE] SELECT completed\r\n"));
    }

    private async Task<List<MailMessageInfo>> ListAllAsync(MailFolder folder)
    {
        var all = new List<MailMessageInfo>();
        long from = 1;
        while (true)
        {
            var page = await _services.Store.ListMessagesAsync(_account!.Id, folder.Id, from, 1000, Closed);
            all.AddRange(page);
            if (page.Count < 1000)
            {
                return all;
            }

            from = page[^1].Uid + 1;
        }
    }

    private void Deselect()
    {
        _selected = null;
        _messages = [];
        _state = ImapState.Authenticated;
    }

    private async Task ListAsync(ImapCommand c)
    {
        var reference = c.Arguments[0] ?? string.Empty;
        var patterns = c.Arguments.Skip(1).Select(p => p ?? string.Empty).ToList();
        var lsub = c.Name == "LSUB";
        var subscribedOnly = lsub || c.ListOptions.Contains("SUBSCRIBED");
        var specialUseOnly = c.ListOptions.Contains("SPECIAL-USE");
        var returnSubscribed = c.ListOptions.Contains("RETURN:SUBSCRIBED") || c.ListOptions.Contains("SUBSCRIBED");
        var w = W;
        if (patterns is [""])
        {
            // RFC 9051 §6.3.9: an empty pattern asks for the delimiter and the root.
            w.Raw("* " + c.Name + " (\\Noselect) \"" + MailFolder.Delimiter + "\" \"\"\r\n");
            Ok(c, c.Name + " completed");
            return;
        }

        var folders = await _services.Store.ListFoldersAsync(_account!.Id, Closed);
        var names = folders.Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
        var matchers = patterns.Select(p => Wildcard(reference + p, ignoreCase: false)).ToList();
        var inboxMatchers = patterns.Select(p => Wildcard(reference + p, ignoreCase: true)).ToList();
        foreach (var folder in folders)
        {
            if (!(folder.IsInbox ? inboxMatchers : matchers).Any(m => m.IsMatch(folder.Name)) || (subscribedOnly && !folder.Subscribed)
                || (specialUseOnly && folder.SpecialUse == SpecialUse.None))
            {
                continue;
            }

            var attributes = new List<string>();
            if (!lsub)
            {
                // RFC 3348 CHILDREN, RFC 6154 SPECIAL-USE, RFC 5258 \Subscribed.
                var prefix = folder.Name + MailFolder.Delimiter;
                attributes.Add(names.Any(n => n.StartsWith(prefix, StringComparison.Ordinal)) ? "\\HasChildren" : "\\HasNoChildren");
                if (folder.SpecialUse.Attribute() is { } use)
                {
                    attributes.Add(use);
                }

                if (returnSubscribed && folder.Subscribed)
                {
                    attributes.Add("\\Subscribed");
                }
            }

            w.Raw("* " + c.Name + " (" + string.Join(' ', attributes) + ") \"" + MailFolder.Delimiter + "\" ").AString(folder.Name).Crlf();
        }

        Ok(c, c.Name + " completed");
    }

    /// <summary>RFC 9051 §6.3.9: "*" matches anything, "%" anything but the hierarchy delimiter; INBOX is case-insensitive.</summary>
    private static Regex Wildcard(string pattern, bool ignoreCase)
    {
        var delimiter = Regex.Escape(MailFolder.Delimiter.ToString());
        var regex = "^" + Regex.Escape(pattern).Replace(@"\*", ".*", StringComparison.Ordinal).Replace("%", "[^" + delimiter + "]*", StringComparison.Ordinal) + "$";
        return new Regex(regex, RegexOptions.CultureInvariant | (ignoreCase ? RegexOptions.IgnoreCase : RegexOptions.None), TimeSpan.FromSeconds(1));
    }

    private async Task StatusAsync(ImapCommand c)
    {
        var folder = await _services.Store.GetFolderAsync(_account!.Id, c.Mailbox!, Closed);
        var status = folder is null ? null : await _services.Store.GetFolderStatusAsync(_account.Id, folder.Id, Closed);
        if (status is null)
        {
            W.Raw(c.Tag + " NO [NONEXISTENT] No such mailbox\r\n");
            return;
        }

        var items = new List<string>();
        foreach (var item in c.Arguments)
        {
            var value = item switch
            {
                "MESSAGES" => status.Messages,
                "UIDNEXT" => status.Folder.UidNext,
                "UIDVALIDITY" => status.Folder.UidValidity,
                "UNSEEN" => status.Unseen,
                "DELETED" => status.Deleted,
                "SIZE" => status.Size,
                "RECENT" => 0,
                _ => -1,
            };
            if (value < 0)
            {
                await BadAsync(c.Tag, "Unknown STATUS item");
                return;
            }

            items.Add(item + " " + value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        W.Raw("* STATUS ").AString(status.Folder.Name).Raw(" (" + string.Join(' ', items) + ")\r\n");
        Ok(c, "STATUS completed");
    }

    private async Task AppendAsync(ImapCommand c)
    {
        var folder = await _services.Store.GetFolderAsync(_account!.Id, c.Mailbox!, Closed);
        if (folder is null)
        {
            // RFC 9051 §6.3.12: TRYCREATE tells the client it may CREATE and retry.
            W.Raw(c.Tag + " NO [TRYCREATE] No such mailbox\r\n");
            return;
        }

        var uids = new List<long>();
        uint validity = 0;
        foreach (var message in c.Appends)
        {
            var content = message.StreamedIndex >= 0 ? _streamed[message.StreamedIndex].Content : message.Inline;
            if (content.Length > _services.Options.MaxMessageSize)
            {
                W.Raw(c.Tag + " NO [TOOBIG] Message too large\r\n");
                return;
            }

            var (flags, keywords) = Flags(message.Flags);
            var result = await _services.Store.AppendAsync(_account.Id, folder.Id, new MessageAppend
            {
                Content = content,
                Flags = flags,
                Keywords = keywords,
                InternalDate = message.InternalDate ?? _services.Time.GetUtcNow(),
            }, Closed);
            switch (result.Status)
            {
                case AppendStatus.NoFolder:
                    W.Raw(c.Tag + " NO [TRYCREATE] No such mailbox\r\n");
                    return;
                case AppendStatus.OverQuota:
                    W.Raw(c.Tag + " NO [OVERQUOTA] Quota exceeded\r\n");
                    return;
            }

            uids.Add(result.Uid);
            validity = result.UidValidity;
        }

        if (_selected is not null && _selected.Id == folder.Id)
        {
            await SyncAsync(reportExpunges: true);
        }

        // RFC 4315 §3: APPENDUID.
        W.Raw(c.Tag + " OK [APPENDUID " + validity + " " + string.Join(',', uids) + "] APPEND completed\r\n");
    }

    /// <summary>IMAP flags to the store's system flags and keywords.</summary>
    private static (MessageFlags Flags, IReadOnlyList<string> Keywords) Flags(IReadOnlyList<string> flags)
    {
        var system = MessageFlags.None;
        var keywords = new List<string>();
        foreach (var flag in flags)
        {
            switch (flag)
            {
                case "\\Seen":
                    system |= MessageFlags.Seen;
                    break;
                case "\\Answered":
                    system |= MessageFlags.Answered;
                    break;
                case "\\Flagged":
                    system |= MessageFlags.Flagged;
                    break;
                case "\\Deleted":
                    system |= MessageFlags.Deleted;
                    break;
                case "\\Draft":
                    system |= MessageFlags.Draft;
                    break;
                default:
                    keywords.Add(flag);
                    break;
            }
        }

        return (system, keywords);
    }
}
