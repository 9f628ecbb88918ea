using System.Text;

namespace MailMesh.Storage.IntegrationTests;

/// <summary>The <see cref="IMailStore"/> contract (issue 9); a fresh, migrated store per test, time always a parameter.</summary>
public abstract class MailStoreContractTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 5, 678, TimeSpan.Zero);
    private static readonly byte[] Body = "Subject: hi\r\n\r\nbody\r\n"u8.ToArray();
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private Stores? _stores;

    protected Stores Stores => _stores!;

    private IMailStore Mail => Stores.Mail;

    private static CancellationToken Ct => CancellationToken.None;

    protected abstract Task<Stores> CreateStoresAsync();

    /// <summary>A store whose writes must wake <see cref="Stores.Mail"/>'s watches: another replica where replicas share the
    /// store (PostgreSQL), the same instance where one process owns it (SQLite, standalone).</summary>
    protected abstract IMailStore OtherReplica();

    public async Task InitializeAsync() => _stores = await CreateStoresAsync();

    public async Task DisposeAsync()
    {
        if (_stores is not null)
        {
            await _stores.DisposeAsync();
        }
    }

    private async Task<MailAccount> AccountAsync(string address, long? quota = null)
    {
        Assert.True(await Mail.CreateAccountAsync(new NewMailAccount { Address = address, PasswordHash = "h", QuotaBytes = quota, CreatedAt = T0 }, Ct));
        return (await Mail.GetAccountAsync(address, Ct))!;
    }

    private async Task<MailFolder> InboxAsync(MailAccount account) => (await Mail.GetFolderAsync(account.Id, "inbox", Ct))!;

    private static LocalDelivery Delivery(Guid spoolId, params (long Id, string Address)[] recipients) => new()
    {
        SpoolMessageId = spoolId,
        Body = Body,
        DeliveredAt = T0,
        Recipients = [.. recipients.Select(r => new LocalDeliveryRecipient
        {
            RecipientId = r.Id,
            Address = r.Address,
            HeaderPrefix = Encoding.ASCII.GetBytes($"Delivered-To: {r.Address}\r\n"),
        })],
    };

    private static async Task<byte[]> ReadAllAsync(Stream? stream)
    {
        Assert.NotNull(stream);
        await using (stream)
        {
            using var copy = new MemoryStream();
            await stream.CopyToAsync(copy);
            return copy.ToArray();
        }
    }

    private async Task<long> AppendAsync(MailAccount account, MailFolder folder, string text, MessageFlags flags = MessageFlags.None)
    {
        var result = await Mail.AppendAsync(account.Id, folder.Id, new MessageAppend { Content = Encoding.ASCII.GetBytes(text), Flags = flags, InternalDate = T0 }, Ct);
        Assert.Equal(AppendStatus.Appended, result.Status);
        return result.Uid;
    }

    [Fact]
    public async Task An_account_gets_inbox_and_the_special_use_folders_and_is_found_case_insensitively()
    {
        var account = await AccountAsync("Alice@Example.ORG", quota: 1000);
        Assert.False(await Mail.CreateAccountAsync(new NewMailAccount { Address = "alice@example.org", CreatedAt = T0 }, Ct));

        Assert.Equal("Alice@Example.ORG", account.Address);
        Assert.Equal("h", account.PasswordHash);
        Assert.Equal(1000, account.QuotaBytes);
        Assert.Equal(0, account.UsedBytes);
        Assert.Equal(T0, account.CreatedAt);
        Assert.Equal(account.Id, (await Mail.GetAccountAsync("ALICE@example.org", Ct))!.Id);

        var folders = await Mail.ListFoldersAsync(account.Id, Ct);
        Assert.Equal(["INBOX", "Drafts", "Junk", "Sent", "Trash"], folders.Select(f => f.Name));
        Assert.Equal([SpecialUse.None, SpecialUse.Drafts, SpecialUse.Junk, SpecialUse.Sent, SpecialUse.Trash], folders.Select(f => f.SpecialUse));
        Assert.All(folders, f => Assert.True(f.Subscribed && f.UidNext == 1 && f.UidValidity != 0));
        Assert.Equal(folders.Count, folders.Select(f => f.UidValidity).Distinct().Count());
        Assert.Empty(await Mail.ListFoldersAsync(account.Id + 1000, Ct));
    }

    [Fact]
    public async Task Recipients_resolve_through_the_account_an_alias_and_the_catch_all_and_are_checked_at_rcpt()
    {
        var alice = await AccountAsync("alice@example.org", quota: 100);
        var bob = await AccountAsync("bob@example.org");
        Assert.True(await Mail.SetAliasAsync("postmaster@example.org", "alice@example.org", Ct));
        Assert.True(await Mail.SetAliasAsync("@Example.org", "bob@example.org", Ct));
        Assert.False(await Mail.SetAliasAsync("x@example.org", "nobody@example.org", Ct));
        Assert.False(await Mail.SetAliasAsync("alice@example.org", "bob@example.org", Ct));

        Assert.Equal(alice.Id, (await Mail.ResolveAsync("Postmaster@example.org", Ct))!.Id);
        Assert.Equal(alice.Id, (await Mail.ResolveAsync("alice@example.org", Ct))!.Id);
        Assert.Equal(bob.Id, (await Mail.ResolveAsync("anyone@EXAMPLE.org", Ct))!.Id);
        Assert.Null(await Mail.ResolveAsync("anyone@example.net", Ct));
        Assert.Null(await Mail.GetAccountAsync("postmaster@example.org", Ct));
        Assert.Equal(["postmaster@example.org", "@Example.org"], (await Mail.ListAliasesAsync(10, Ct)).Select(a => a.Address).Order(StringComparer.Ordinal).Reverse());

        Assert.Equal(RecipientCheck.Ok, await Mail.CheckRecipientAsync("postmaster@example.org", 100, Ct));
        Assert.Equal(RecipientCheck.OverQuota, await Mail.CheckRecipientAsync("postmaster@example.org", 101, Ct));
        Assert.Equal(RecipientCheck.UnknownUser, await Mail.CheckRecipientAsync("anyone@example.net", 0, Ct));
        Assert.True(await Mail.SetDisabledAsync("BOB@example.org", true, Ct));
        Assert.Equal(RecipientCheck.Disabled, await Mail.CheckRecipientAsync("someone@example.org", 0, Ct));
        Assert.True(await Mail.RemoveAliasAsync("@example.org", Ct));
        Assert.Equal(RecipientCheck.UnknownUser, await Mail.CheckRecipientAsync("someone@example.org", 0, Ct));
        Assert.False(await Mail.RemoveAliasAsync("@example.org", Ct));
    }

    [Fact]
    public async Task Accounts_are_listed_in_pages_and_their_password_quota_and_state_can_be_changed()
    {
        foreach (var name in new[] { "c", "a", "b" })
        {
            await AccountAsync(name + "@example.org");
        }

        var first = await Mail.ListAccountsAsync(null, 2, Ct);
        Assert.Equal(["a@example.org", "b@example.org"], first.Select(a => a.Address));
        Assert.Equal(["c@example.org"], (await Mail.ListAccountsAsync(first[^1].Address, 2, Ct)).Select(a => a.Address));

        Assert.True(await Mail.SetPasswordHashAsync("a@example.org", "pbkdf2-sha256$x", Ct));
        Assert.True(await Mail.SetQuotaAsync("a@example.org", 5, Ct));
        Assert.True(await Mail.SetDisabledAsync("a@example.org", true, Ct));
        var a = await Mail.GetAccountAsync("a@example.org", Ct);
        Assert.Equal(("pbkdf2-sha256$x", 5L, true), (a!.PasswordHash, a.QuotaBytes!.Value, a.Disabled));
        Assert.True(await Mail.SetQuotaAsync("a@example.org", null, Ct));
        Assert.Null((await Mail.GetAccountAsync("a@example.org", Ct))!.QuotaBytes);
        Assert.False(await Mail.SetQuotaAsync("nobody@example.org", 1, Ct));
    }

    [Fact]
    public async Task Delivery_stores_the_body_once_for_every_recipient_and_a_redelivery_stores_nothing()
    {
        var alice = await AccountAsync("alice@example.org");
        var bob = await AccountAsync("bob@example.org");
        var spoolId = Guid.NewGuid();
        var delivery = Delivery(spoolId, (1, "alice@example.org"), (2, "Bob@example.org"), (3, "nobody@example.org"));

        var outcomes = await Mail.DeliverAsync(delivery, Ct);
        Assert.Equal([LocalDeliveryStatus.Stored, LocalDeliveryStatus.Stored, LocalDeliveryStatus.UnknownUser], outcomes.Select(o => o.Status));
        Assert.Equal([1L, 2L, 3L], outcomes.Select(o => o.RecipientId));
        Assert.Equal((alice.Id, 1L), (outcomes[0].AccountId, outcomes[0].Uid));
        Assert.Equal(bob.Id, outcomes[1].AccountId);

        // The same spool recipients again (a new lease after a crash): reported stored, nothing added.
        var again = await OtherReplica().DeliverAsync(delivery, Ct);
        Assert.Equal(outcomes.Take(2), again.Take(2));
        var aliceInbox = await InboxAsync(alice);
        var listed = Assert.Single(await Mail.ListMessagesAsync(alice.Id, aliceInbox.Id, 1, 100, Ct));

        var expected = Encoding.ASCII.GetBytes("Delivered-To: alice@example.org\r\n").Concat(Body).ToArray();
        Assert.Equal(expected, await ReadAllAsync(await Mail.OpenMessageAsync(alice.Id, aliceInbox.Id, listed.Uid, Ct)));
        Assert.Equal(expected.Length, listed.Size);
        Assert.Equal(T0, listed.InternalDate);
        Assert.Equal(MessageFlags.None, listed.Flags);
        Assert.Equal(expected.Length, (await Mail.GetAccountAsync("alice@example.org", Ct))!.UsedBytes);
        Assert.Equal(2, (await Mail.GetFolderAsync(alice.Id, "INBOX", Ct))!.UidNext);

        // Another account cannot read it, nor can a wrong folder.
        Assert.Null(await Mail.OpenMessageAsync(bob.Id, aliceInbox.Id, listed.Uid, Ct));
        Assert.Empty(await Mail.ListMessagesAsync(bob.Id, aliceInbox.Id, 1, 100, Ct));

        // The rest of the recipients of the same spool message later (the unknown one was created meanwhile).
        await AccountAsync("nobody@example.org");
        var late = await Mail.DeliverAsync(delivery, Ct);
        Assert.All(late, o => Assert.Equal(LocalDeliveryStatus.Stored, o.Status));
    }

    [Fact]
    public async Task A_junk_delivery_goes_to_the_Junk_folder_and_to_INBOX_when_the_user_deleted_it()
    {
        var alice = await AccountAsync("alice@example.org");
        var bob = await AccountAsync("bob@example.org");
        Assert.True(await Mail.DeleteFolderAsync(bob.Id, "Junk", Ct));

        var outcomes = await Mail.DeliverAsync(Delivery(Guid.NewGuid(), (1, "alice@example.org"), (2, "bob@example.org")) with { Junk = true }, Ct);

        var junk = (await Mail.GetFolderAsync(alice.Id, "Junk", Ct))!;
        Assert.Equal(SpecialUse.Junk, junk.SpecialUse);
        Assert.Equal(junk.Id, outcomes[0].FolderId);
        Assert.Single(await Mail.ListMessagesAsync(alice.Id, junk.Id, 1, 100, Ct));
        Assert.Empty(await Mail.ListMessagesAsync(alice.Id, (await InboxAsync(alice)).Id, 1, 100, Ct));
        Assert.Equal((await InboxAsync(bob)).Id, outcomes[1].FolderId);
    }

    [Fact]
    public async Task Large_bodies_given_as_a_slice_of_memory_are_stored_exactly()
    {
        // Not a whole array (a memory map or a slice, as APPEND's spilled literal and a large delivery's copy are): the
        // store writes it in pieces (SQLite: zeroblob and blob I/O past 64 KiB) and reads back the same octets.
        var alice = await AccountAsync("alice@example.org");
        var inbox = await InboxAsync(alice);
        var backing = new byte[3 * 1024 * 1024 + 10];
        new Random(9).NextBytes(backing);
        var delivered = new ReadOnlyMemory<byte>(backing, 5, 2 * 1024 * 1024 + 3);
        var appended = new ReadOnlyMemory<byte>(backing, 1, 70_000);
        var delivery = Delivery(Guid.NewGuid(), (1, "alice@example.org")) with { Body = delivered };
        Assert.Equal(LocalDeliveryStatus.Stored, (await Mail.DeliverAsync(delivery, Ct))[0].Status);
        var append = await Mail.AppendAsync(alice.Id, inbox.Id, new MessageAppend { Content = appended, InternalDate = T0 }, Ct);
        Assert.Equal(AppendStatus.Appended, append.Status);

        var listed = await Mail.ListMessagesAsync(alice.Id, inbox.Id, 1, 10, Ct);
        var prefix = Encoding.ASCII.GetBytes("Delivered-To: alice@example.org\r\n");
        byte[] expected = [.. prefix, .. delivered.ToArray()];
        Assert.Equal(expected, await ReadAllAsync(await Mail.OpenMessageAsync(alice.Id, inbox.Id, listed[0].Uid, Ct)));
        Assert.Equal(appended.ToArray(), await ReadAllAsync(await Mail.OpenMessageAsync(alice.Id, inbox.Id, append.Uid, Ct)));
        Assert.Equal(prefix.Length + delivered.Length + (long)appended.Length, (await Mail.GetAccountAsync("alice@example.org", Ct))!.UsedBytes);
    }

    [Fact]
    public async Task Old_delivery_keys_are_purged_in_batches_and_the_messages_stay()
    {
        var alice = await AccountAsync("alice@example.org");
        var old = Delivery(Guid.NewGuid(), (1, "alice@example.org"), (2, "alice@example.org"), (3, "alice@example.org"));
        await Mail.DeliverAsync(old, Ct);
        await Mail.DeliverAsync(Delivery(Guid.NewGuid(), (1, "alice@example.org")) with { DeliveredAt = T0.AddDays(10) }, Ct);

        Assert.Equal(2, await Mail.PurgeDeliveryKeysAsync(T0.AddDays(1), 2, Ct));
        Assert.Equal(1, await Mail.PurgeDeliveryKeysAsync(T0.AddDays(1), 2, Ct));
        Assert.Equal(0, await Mail.PurgeDeliveryKeysAsync(T0.AddDays(1), 2, Ct));
        Assert.Equal(4, (await Mail.ListMessagesAsync(alice.Id, (await InboxAsync(alice)).Id, 1, 10, Ct)).Count);
    }

    [Fact]
    public async Task Delivery_reports_over_quota_and_disabled_recipients_and_stores_nothing_for_them()
    {
        await AccountAsync("small@example.org", quota: 10);
        await AccountAsync("off@example.org");
        Assert.True(await Mail.SetDisabledAsync("off@example.org", true, Ct));

        var outcomes = await Mail.DeliverAsync(Delivery(Guid.NewGuid(), (1, "small@example.org"), (2, "off@example.org")), Ct);

        Assert.Equal([LocalDeliveryStatus.OverQuota, LocalDeliveryStatus.Disabled], outcomes.Select(o => o.Status));
        Assert.Equal(0, (await Mail.GetAccountAsync("small@example.org", Ct))!.UsedBytes);
    }

    [Fact]
    public async Task Concurrent_deliveries_from_two_replicas_get_distinct_ascending_uids()
    {
        var alice = await AccountAsync("alice@example.org");
        var other = OtherReplica();
        var tasks = Enumerable.Range(0, 40).Select(i =>
            (i % 2 == 0 ? Mail : other).DeliverAsync(Delivery(Guid.NewGuid(), (i, "alice@example.org")), Ct));
        var outcomes = (await Task.WhenAll(tasks)).SelectMany(o => o).ToList();

        Assert.All(outcomes, o => Assert.Equal(LocalDeliveryStatus.Stored, o.Status));
        Assert.Equal(Enumerable.Range(1, 40).Select(i => (long)i), outcomes.Select(o => o.Uid).Order());
        var inbox = await InboxAsync(alice);
        Assert.Equal(41, inbox.UidNext);
        var page1 = await Mail.ListMessagesAsync(alice.Id, inbox.Id, 1, 25, Ct);
        var page2 = await Mail.ListMessagesAsync(alice.Id, inbox.Id, page1[^1].Uid + 1, 25, Ct);
        Assert.Equal(Enumerable.Range(1, 40).Select(i => (long)i), page1.Concat(page2).Select(m => m.Uid));
        var status = await Mail.GetFolderStatusAsync(alice.Id, inbox.Id, Ct);
        Assert.Equal((40L, 40L, 0L), (status!.Messages, status.Unseen, status.Deleted));
        Assert.Equal(page1.Concat(page2).Sum(m => m.Size), status.Size);
    }

    [Fact]
    public async Task Flags_and_keywords_are_stored_and_each_change_takes_a_new_mod_sequence()
    {
        var alice = await AccountAsync("alice@example.org");
        var inbox = await InboxAsync(alice);
        var one = await AppendAsync(alice, inbox, "a\r\n");
        var two = await AppendAsync(alice, inbox, "b\r\n", MessageFlags.Seen);
        var before = (await Mail.GetFolderAsync(alice.Id, "INBOX", Ct))!.HighestModSeq;

        var added = await Mail.StoreFlagsAsync(alice.Id, inbox.Id, [one, two, 99], new FlagChange { Mode = FlagChangeMode.Add, Flags = MessageFlags.Seen | MessageFlags.Flagged }, Ct);
        Assert.Equal([one, two], added.Select(m => m.Uid));
        Assert.All(added, m => Assert.Equal(MessageFlags.Seen | MessageFlags.Flagged, m.Flags));
        Assert.All(added, m => Assert.True(m.ModSeq > before));

        var keywords = await Mail.StoreFlagsAsync(alice.Id, inbox.Id, [one], new FlagChange { Mode = FlagChangeMode.Add, Keywords = ["$Forwarded", "work"] }, Ct);
        Assert.Equal(["$Forwarded", "work"], keywords[0].Keywords);
        var removed = await Mail.StoreFlagsAsync(alice.Id, inbox.Id, [one], new FlagChange { Mode = FlagChangeMode.Remove, Flags = MessageFlags.Seen, Keywords = ["WORK"] }, Ct);
        Assert.Equal(MessageFlags.Flagged, removed[0].Flags);
        Assert.Equal(["$Forwarded"], removed[0].Keywords);
        var replaced = await Mail.StoreFlagsAsync(alice.Id, inbox.Id, [two], new FlagChange { Mode = FlagChangeMode.Replace, Flags = MessageFlags.Deleted }, Ct);
        Assert.Equal(MessageFlags.Deleted, replaced[0].Flags);

        var after = await Mail.GetFolderAsync(alice.Id, "INBOX", Ct);
        Assert.Equal(replaced[0].ModSeq, after!.HighestModSeq);
        Assert.Equal([two], (await Mail.ListChangedAsync(alice.Id, inbox.Id, removed[0].ModSeq, 100, Ct)).Select(m => m.Uid));

        // A change that changes nothing takes no mod-sequence.
        await Mail.StoreFlagsAsync(alice.Id, inbox.Id, [two], new FlagChange { Mode = FlagChangeMode.Add, Flags = MessageFlags.Deleted }, Ct);
        Assert.Equal(after.HighestModSeq, (await Mail.GetFolderAsync(alice.Id, "INBOX", Ct))!.HighestModSeq);
        var status = await Mail.GetFolderStatusAsync(alice.Id, inbox.Id, Ct);
        Assert.Equal((2L, 2L, 1L), (status!.Messages, status.Unseen, status.Deleted));
    }

    [Fact]
    public async Task Copy_move_expunge_and_delete_keep_uids_quota_and_shared_bodies_right()
    {
        var alice = await AccountAsync("alice@example.org", quota: 1000);
        var inbox = await InboxAsync(alice);
        var trash = (await Mail.GetFolderAsync(alice.Id, "Trash", Ct))!;
        var one = await AppendAsync(alice, inbox, "one\r\n", MessageFlags.Seen);
        var two = await AppendAsync(alice, inbox, "two\r\n");
        await AppendAsync(alice, trash, "old\r\n");

        var copy = await Mail.CopyMessagesAsync(alice.Id, inbox.Id, [two, one, 77], trash.Id, Ct);
        Assert.Equal(CopyStatus.Copied, copy.Status);
        Assert.Equal(trash.UidValidity, copy.UidValidity);
        Assert.Equal([(one, 2L), (two, 3L)], copy.Uids);
        Assert.Equal(MessageFlags.Seen, (await Mail.ListMessagesAsync(alice.Id, trash.Id, 2, 1, Ct))[0].Flags);
        Assert.Equal(25, (await Mail.GetAccountAsync("alice@example.org", Ct))!.UsedBytes);
        Assert.Equal(CopyStatus.NoTarget, (await Mail.CopyMessagesAsync(alice.Id, inbox.Id, [one], trash.Id + 1000, Ct)).Status);

        // Expunge removes only \Deleted messages; the copy's body survives its original.
        await Mail.StoreFlagsAsync(alice.Id, inbox.Id, [one], new FlagChange { Mode = FlagChangeMode.Add, Flags = MessageFlags.Deleted }, Ct);
        Assert.Equal([one], await Mail.ExpungeAsync(alice.Id, inbox.Id, null, Ct));
        Assert.Equal("one\r\n"u8.ToArray(), await ReadAllAsync(await Mail.OpenMessageAsync(alice.Id, trash.Id, 2, Ct)));
        Assert.Null(await Mail.OpenMessageAsync(alice.Id, inbox.Id, one, Ct));

        var move = await Mail.MoveMessagesAsync(alice.Id, trash.Id, [2, 3], inbox.Id, Ct);
        Assert.Equal([(2L, 3L), (3L, 4L)], move.Uids);
        Assert.Equal([two, 3, 4], (await Mail.ListMessagesAsync(alice.Id, inbox.Id, 1, 10, Ct)).Select(m => m.Uid));
        Assert.Equal([1L], (await Mail.ListMessagesAsync(alice.Id, trash.Id, 1, 10, Ct)).Select(m => m.Uid));
        Assert.Equal(20, (await Mail.GetAccountAsync("alice@example.org", Ct))!.UsedBytes);

        // POP3 QUIT: unconditional and atomic; the UIDs are never given again.
        Assert.Equal([two, 3L, 4L], await Mail.DeleteMessagesAsync(alice.Id, inbox.Id, [two, 3, 4, 99], Ct));
        Assert.Equal(5, (await Mail.GetAccountAsync("alice@example.org", Ct))!.UsedBytes);
        Assert.Equal(5, await AppendAsync(alice, inbox, "new\r\n"));
    }

    [Fact]
    public async Task Append_and_copy_refuse_past_the_quota_and_append_needs_the_folder()
    {
        var alice = await AccountAsync("alice@example.org", quota: 8);
        var inbox = await InboxAsync(alice);
        var uid = await AppendAsync(alice, inbox, "12345\r\n");

        var big = await Mail.AppendAsync(alice.Id, inbox.Id, new MessageAppend { Content = "12\r\n"u8.ToArray(), InternalDate = T0 }, Ct);
        Assert.Equal(AppendStatus.OverQuota, big.Status);
        Assert.Equal(CopyStatus.OverQuota, (await Mail.CopyMessagesAsync(alice.Id, inbox.Id, [uid], inbox.Id, Ct)).Status);
        Assert.Equal(AppendStatus.NoFolder, (await Mail.AppendAsync(alice.Id, inbox.Id + 1000, new MessageAppend { Content = "x"u8.ToArray(), InternalDate = T0 }, Ct)).Status);
        Assert.Equal(CopyStatus.Copied, (await Mail.MoveMessagesAsync(alice.Id, inbox.Id, [uid], inbox.Id, Ct)).Status);
        Assert.Equal(7, (await Mail.GetAccountAsync("alice@example.org", Ct))!.UsedBytes);
    }

    [Fact]
    public async Task Folders_are_created_renamed_with_their_inferiors_subscribed_and_deleted()
    {
        var alice = await AccountAsync("alice@example.org");
        var work = await Mail.CreateFolderAsync(alice.Id, "Work", SpecialUse.None, Ct);
        Assert.NotNull(work);
        Assert.NotNull(await Mail.CreateFolderAsync(alice.Id, "Work/2030", SpecialUse.Archive, Ct));
        Assert.Null(await Mail.CreateFolderAsync(alice.Id, "Work", SpecialUse.None, Ct));
        Assert.Null(await Mail.CreateFolderAsync(alice.Id, "inbox", SpecialUse.None, Ct));
        await AppendAsync(alice, work, "w\r\n");

        Assert.Equal(FolderRenameResult.AlreadyExists, await Mail.RenameFolderAsync(alice.Id, "Work", "Sent", Ct));
        Assert.Equal(FolderRenameResult.NotFound, await Mail.RenameFolderAsync(alice.Id, "Nope", "Other", Ct));
        Assert.Equal(FolderRenameResult.Renamed, await Mail.RenameFolderAsync(alice.Id, "Work", "Jobs", Ct));
        var jobs = await Mail.GetFolderAsync(alice.Id, "Jobs", Ct);
        Assert.Equal((work.Id, work.UidValidity, 2L), (jobs!.Id, jobs.UidValidity, jobs.UidNext));
        Assert.Equal(SpecialUse.Archive, (await Mail.GetFolderAsync(alice.Id, "Jobs/2030", Ct))!.SpecialUse);
        Assert.Null(await Mail.GetFolderAsync(alice.Id, "Work/2030", Ct));

        Assert.True(await Mail.SetSubscribedAsync(alice.Id, "Jobs", false, Ct));
        Assert.False((await Mail.GetFolderAsync(alice.Id, "Jobs", Ct))!.Subscribed);

        Assert.False(await Mail.DeleteFolderAsync(alice.Id, "INBOX", Ct));
        Assert.True(await Mail.DeleteFolderAsync(alice.Id, "Jobs", Ct));
        Assert.Equal(0, (await Mail.GetAccountAsync("alice@example.org", Ct))!.UsedBytes);
        Assert.NotNull(await Mail.GetFolderAsync(alice.Id, "Jobs/2030", Ct));
        var again = await Mail.CreateFolderAsync(alice.Id, "Jobs", SpecialUse.None, Ct);
        Assert.NotEqual(jobs.UidValidity, again!.UidValidity);
    }

    [Fact]
    public async Task Renaming_inbox_moves_its_messages_and_leaves_it_empty()
    {
        var alice = await AccountAsync("alice@example.org");
        var inbox = await InboxAsync(alice);
        await AppendAsync(alice, inbox, "a\r\n");
        await AppendAsync(alice, inbox, "b\r\n");

        Assert.Equal(FolderRenameResult.Renamed, await Mail.RenameFolderAsync(alice.Id, "INBOX", "Old", Ct));

        var old = await Mail.GetFolderAsync(alice.Id, "Old", Ct);
        Assert.Equal([1L, 2L], (await Mail.ListMessagesAsync(alice.Id, old!.Id, 1, 10, Ct)).Select(m => m.Uid));
        Assert.Equal("b\r\n"u8.ToArray(), await ReadAllAsync(await Mail.OpenMessageAsync(alice.Id, old.Id, 2, Ct)));
        var empty = await Mail.GetFolderAsync(alice.Id, "INBOX", Ct);
        Assert.Equal((inbox.Id, 3L), (empty!.Id, empty.UidNext));
        Assert.Empty(await Mail.ListMessagesAsync(alice.Id, inbox.Id, 1, 10, Ct));
    }

    [Fact]
    public async Task A_watch_wakes_on_a_delivery_by_any_replica()
    {
        var alice = await AccountAsync("alice@example.org");
        var bob = await AccountAsync("bob@example.org");
        var inbox = await InboxAsync(alice);
        using var watch = Mail.WatchChanges(alice.Id);
        using var timeout = new CancellationTokenSource(Wait);

        // The first signal may be the listener's "re-read everything" once it is connected; then the delivery's.
        await OtherReplica().DeliverAsync(Delivery(Guid.NewGuid(), (1, "bob@example.org")), Ct);
        await OtherReplica().DeliverAsync(Delivery(Guid.NewGuid(), (1, "alice@example.org")), Ct);
        MailboxChange change;
        do
        {
            change = await watch.WaitAsync(timeout.Token);
            Assert.Equal(alice.Id, change.AccountId);
        }
        while (change.FolderId is null && (await Mail.ListMessagesAsync(alice.Id, inbox.Id, 1, 10, Ct)).Count == 0);

        Assert.True(change.FolderId is null || change.FolderId == inbox.Id);
        Assert.NotEqual(bob.Id, change.AccountId);
    }

    [Fact]
    public async Task One_pop3_session_holds_the_maildrop_until_it_releases_it_or_its_lease_runs_out()
    {
        var alice = await AccountAsync("alice@example.org");
        Guid first = Guid.NewGuid(), second = Guid.NewGuid();

        Assert.True(await Mail.TryLockMaildropAsync(alice.Id, first, T0, T0.AddMinutes(2), Ct));
        Assert.False(await OtherReplica().TryLockMaildropAsync(alice.Id, second, T0.AddMinutes(1), T0.AddMinutes(3), Ct));
        Assert.True(await Mail.TryLockMaildropAsync(alice.Id, first, T0.AddMinutes(1), T0.AddMinutes(3), Ct));
        Assert.False(await Mail.TryLockMaildropAsync(alice.Id, second, T0.AddMinutes(2.5), T0.AddMinutes(5), Ct));
        Assert.True(await Mail.TryLockMaildropAsync(alice.Id, second, T0.AddMinutes(3), T0.AddMinutes(5), Ct));

        await Mail.ReleaseMaildropAsync(alice.Id, first, Ct);
        Assert.False(await Mail.TryLockMaildropAsync(alice.Id, first, T0.AddMinutes(4), T0.AddMinutes(6), Ct));
        await Mail.ReleaseMaildropAsync(alice.Id, second, Ct);
        Assert.True(await Mail.TryLockMaildropAsync(alice.Id, first, T0.AddMinutes(4), T0.AddMinutes(6), Ct));
    }

    [Fact]
    public async Task MaildropLock_is_exclusive_and_released_on_dispose()
    {
        var alice = await AccountAsync("alice@example.org");
        var held = await MaildropLock.TryAcquireAsync(Mail, alice.Id, TimeProvider.System, null, Ct);
        Assert.NotNull(held);
        Assert.Null(await MaildropLock.TryAcquireAsync(OtherReplica(), alice.Id, TimeProvider.System, null, Ct));

        await held.DisposeAsync();
        await using var next = await MaildropLock.TryAcquireAsync(OtherReplica(), alice.Id, TimeProvider.System, null, Ct);
        Assert.NotNull(next);
    }
}

public sealed class PostgresMailStoreTests : MailStoreContractTests
{
    private IMailStore? _other;

    protected override async Task<Stores> CreateStoresAsync() => await PostgresStores.CreateAsync();

    protected override IMailStore OtherReplica() => _other ??= Stores.OpenMailStore();
}

public sealed class SqliteMailStoreTests : MailStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await SqliteStores.CreateAsync();

    protected override IMailStore OtherReplica() => Stores.Mail;
}
