namespace MailMesh.Storage.IntegrationTests;

/// <summary>
/// The <see cref="ISpoolAdmin"/> and <see cref="ISuppressionAdmin"/> contract (admin API, issue 12), on both stores:
/// keyset pages, filters, idempotent actions that never touch a recipient in flight, the audit trail, the summary.
/// </summary>
public abstract class SpoolAdminContractTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 5, 678, TimeSpan.Zero);
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(5);
    private static CancellationToken Ct => CancellationToken.None;

    private Stores? _stores;

    private Stores Stores => _stores!;

    private ISpool Spool => Stores.Spool;

    private ISpoolAdmin Admin => Stores.SpoolAdmin;

    protected abstract Task<Stores> CreateStoresAsync();

    public async Task InitializeAsync() => _stores = await CreateStoresAsync();

    public async Task DisposeAsync()
    {
        if (_stores is not null)
        {
            await _stores.DisposeAsync();
        }
    }

    private async Task<Guid> StoreAsync(DateTimeOffset receivedAt, string sender, params string[] recipients)
    {
        var id = Guid.NewGuid();
        await Spool.StoreAsync(new NewMessage
        {
            Id = id,
            Sender = sender,
            Recipients = [.. recipients.Select(r => new NewRecipient { Address = r })],
            Content = "Subject: hi\r\n\r\nbody\r\n"u8.ToArray(),
            ReceivedAt = receivedAt,
        }, Ct);
        return id;
    }

    private Task<AdminActionResult> ApplyAsync(AdminAction action, IReadOnlyList<Guid>? ids = null, MessageFilter? filter = null, DateTimeOffset? now = null) =>
        Admin.ApplyAsync(new AdminActionRequest
        {
            Action = action,
            MessageIds = ids,
            Filter = filter ?? new MessageFilter(),
            Actor = "tester",
            Target = ids is null ? "filter" : SpoolAdminDescribe(ids),
            Now = now ?? T0,
        }, Ct);

    private static string SpoolAdminDescribe(IEnumerable<Guid> ids) => string.Join(',', ids);

    private async Task<RecipientState[]> StatesAsync(Guid id) =>
        [.. (await Spool.GetStatusAsync(id, Ct))!.Recipients.OrderBy(r => r.Address, StringComparer.Ordinal).Select(r => r.State)];

    [Fact]
    public async Task Pages_newest_first_with_a_keyset_cursor_and_no_gaps_or_repeats()
    {
        var ids = new List<Guid>();
        for (var i = 0; i < 7; i++)
        {
            // Two messages share each timestamp: the id breaks the tie.
            ids.Add(await StoreAsync(T0.AddSeconds(i / 2), "s@example.org", $"r{i}@example.com"));
        }

        var seen = new List<Guid>();
        MessageCursor? after = null;
        var pages = 0;
        do
        {
            var page = await Admin.ListMessagesAsync(new MessageListQuery { Limit = 3, After = after }, Ct);
            seen.AddRange(page.Items.Select(m => m.Id));
            after = page.Next;
            pages++;
        }
        while (after is not null);

        Assert.Equal(3, pages);
        Assert.Equal(ids.Count, seen.Count);
        Assert.Equal(ids.ToHashSet(), seen.ToHashSet());
        var listed = await Admin.ListMessagesAsync(new MessageListQuery { Limit = 10 }, Ct);
        Assert.True(listed.Items.Zip(listed.Items.Skip(1)).All(p => p.First.ReceivedAt >= p.Second.ReceivedAt));
        Assert.Null(listed.Next);
        Assert.Equal(1, listed.Items[0].RecipientCount);
        Assert.Equal(1, listed.Items[0].States[RecipientState.Queued]);
    }

    [Fact]
    public async Task Filters_by_sender_recipient_domain_state_and_time()
    {
        var a = await StoreAsync(T0, "Alice@Example.org", "x@one.test", "y@two.test");
        var b = await StoreAsync(T0.AddMinutes(1), "bob@example.org", "z@two.test");
        var c = await StoreAsync(T0.AddMinutes(2), "alice@example.org", "X@three.test");

        async Task<Guid[]> Ids(MessageFilter filter) =>
            [.. (await Admin.ListMessagesAsync(new MessageListQuery { Filter = filter }, Ct)).Items.Select(m => m.Id)];

        Assert.Equal([c, a], await Ids(new MessageFilter { Sender = "alice@example.org" }));
        Assert.Equal([b, a], await Ids(new MessageFilter { Domain = "two.test" }));
        Assert.Equal([c], await Ids(new MessageFilter { Recipient = "x@three.test" }));
        Assert.Equal([b], await Ids(new MessageFilter { ReceivedFrom = T0.AddMinutes(1), ReceivedTo = T0.AddMinutes(2) }));
        Assert.Equal([a], await Ids(new MessageFilter { Sender = "alice@example.org", Domain = "one.test" }));

        await ApplyAsync(AdminAction.Hold, [b]);
        Assert.Equal([b], await Ids(new MessageFilter { States = [RecipientState.Held] }));

        // Recipient members hold for one and the same recipient.
        Assert.Empty(await Ids(new MessageFilter { Domain = "one.test", States = [RecipientState.Held] }));
    }

    [Fact]
    public async Task Hold_keeps_recipients_from_the_scheduler_and_release_makes_them_due_now()
    {
        var id = await StoreAsync(T0, "s@example.org", "a@hold.test", "b@other.test");

        var held = await ApplyAsync(AdminAction.Hold, filter: new MessageFilter { Domain = "hold.test" });
        Assert.Equal(1, held.Changed);
        Assert.Equal([RecipientState.Held, RecipientState.Queued], await StatesAsync(id));

        // Idempotent: holding again changes nothing more.
        Assert.Equal(0, (await ApplyAsync(AdminAction.Hold, filter: new MessageFilter { Domain = "hold.test" })).Changed);

        var claimed = await Spool.ClaimDueAsync(T0.AddHours(1), 100, Lease, Ct);
        Assert.Equal(["b@other.test"], claimed.SelectMany(j => j.Recipients).Select(r => r.Address));

        var later = T0.AddHours(2);
        Assert.Equal(1, (await ApplyAsync(AdminAction.Release, [id], now: later)).Changed);
        Assert.Equal(0, (await ApplyAsync(AdminAction.Release, [id], now: later)).Changed);
        var released = await Spool.ClaimDueAsync(later, 100, Lease, Ct);
        Assert.Contains("a@hold.test", released.SelectMany(j => j.Recipients).Select(r => r.Address));
    }

    [Fact]
    public async Task Actions_skip_recipients_in_flight_and_say_so()
    {
        var id = await StoreAsync(T0, "s@example.org", "a@busy.test");
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 100, Lease, Ct));

        foreach (var action in new[] { AdminAction.Hold, AdminAction.Bounce, AdminAction.Retry, AdminAction.Delete })
        {
            var result = await ApplyAsync(action, [id]);
            Assert.Equal(0, result.Changed);
            Assert.Equal(1, result.SkippedInFlight);
        }

        // The attempt still owns the recipient: its result applies as if nothing had happened.
        var applied = await Spool.CompleteAttemptAsync(id, job.LeaseId,
            [new RecipientUpdate { RecipientId = job.Recipients[0].RecipientId, State = RecipientState.Delivered, AttemptedAt = T0.AddSeconds(1), ReplyCode = 250 }], Ct);
        Assert.Single(applied);
        Assert.Equal([RecipientState.Delivered], await StatesAsync(id));
    }

    [Fact]
    public async Task A_hold_racing_the_scheduler_neither_loses_nor_duplicates_a_recipient()
    {
        var ids = new List<Guid>();
        for (var i = 0; i < 200; i++)
        {
            ids.Add(await StoreAsync(T0, "s@example.org", $"r{i}@race.test"));
        }

        // Another spool instance (own connections) claims in small rounds while the hold runs.
        var claimer = Stores.OpenSpool();
        var claiming = Task.Run(async () =>
        {
            var jobs = new List<DeliveryJob>();
            for (var round = 0; round < 40; round++)
            {
                jobs.AddRange(await claimer.ClaimDueAsync(T0, 5, Lease, Ct));
            }

            return jobs;
        });
        var hold = await ApplyAsync(AdminAction.Hold, filter: new MessageFilter { Domain = "race.test" });
        var claimed = await claiming;

        // Every claimed recipient's result still applies (its lease was not disturbed); every other one is held.
        foreach (var job in claimed)
        {
            var applied = await Spool.CompleteAttemptAsync(job.MessageId, job.LeaseId,
                [.. job.Recipients.Select(r => new RecipientUpdate { RecipientId = r.RecipientId, State = RecipientState.Delivered, AttemptedAt = T0, ReplyCode = 250 })], Ct);
            Assert.Equal(job.Recipients.Count, applied.Count);
        }

        var states = new List<RecipientState>();
        foreach (var id in ids)
        {
            states.AddRange(await StatesAsync(id));
        }

        var claimedCount = claimed.Sum(j => j.Recipients.Count);
        Assert.Equal(claimedCount, states.Count(s => s == RecipientState.Delivered));
        Assert.Equal(200 - claimedCount, states.Count(s => s == RecipientState.Held));
        Assert.True(hold.Changed <= 200 - claimedCount + hold.SkippedInFlight);
        Assert.Empty(await Spool.ClaimDueAsync(T0.AddDays(1), 1000, Lease, Ct));
    }

    [Fact]
    public async Task Retry_makes_deferred_recipients_due_now_once()
    {
        var id = await StoreAsync(T0, "s@example.org", "a@slow.test");
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 100, Lease, Ct));
        await Spool.CompleteAttemptAsync(id, job.LeaseId,
            [new RecipientUpdate { RecipientId = job.Recipients[0].RecipientId, State = RecipientState.Deferred, NextAttemptAt = T0.AddHours(1), AttemptedAt = T0, ReplyCode = 451 }], Ct);
        Assert.Empty(await Spool.ClaimDueAsync(T0.AddMinutes(1), 100, Lease, Ct));

        Assert.Equal(1, (await ApplyAsync(AdminAction.Retry, [id], now: T0.AddMinutes(1))).Changed);
        Assert.Equal(0, (await ApplyAsync(AdminAction.Retry, [id], now: T0.AddMinutes(1))).Changed);
        Assert.Single(await Spool.ClaimDueAsync(T0.AddMinutes(1), 100, Lease, Ct));
    }

    [Fact]
    public async Task Filters_and_acts_by_the_bounce_class_of_a_recipients_last_attempt()
    {
        var throttled = await StoreAsync(T0, "s@example.org", "a@slow.test");
        var blocked = await StoreAsync(T0.AddMinutes(1), "s@example.org", "b@slow.test");
        foreach (var job in await Spool.ClaimDueAsync(T0.AddMinutes(3), 100, Lease, Ct))
        {
            var bounceClass = job.MessageId == throttled ? "Throttled" : "SpamBlock";
            await Spool.CompleteAttemptAsync(job.MessageId, job.LeaseId,
                [new RecipientUpdate { RecipientId = job.Recipients[0].RecipientId, State = RecipientState.Deferred, NextAttemptAt = T0.AddHours(1), AttemptedAt = T0, ReplyCode = 421, BounceClass = bounceClass }], Ct);
        }

        // Never attempted: no class.
        await StoreAsync(T0.AddMinutes(2), "s@example.org", "c@slow.test");

        async Task<Guid[]> Ids(MessageFilter filter) =>
            [.. (await Admin.ListMessagesAsync(new MessageListQuery { Filter = filter }, Ct)).Items.Select(m => m.Id)];

        Assert.Equal([throttled], await Ids(new MessageFilter { BounceClasses = ["Throttled"] }));
        Assert.Equal([blocked, throttled], await Ids(new MessageFilter { BounceClasses = ["Throttled", "SpamBlock"] }));
        Assert.Empty(await Ids(new MessageFilter { BounceClasses = ["QuotaIssues"] }));
        Assert.Empty(await Ids(new MessageFilter { BounceClasses = ["Throttled"], States = [RecipientState.Held] }));

        // A bulk action by class touches only that class: every throttled recipient retried now, the blocked one not.
        var retried = await ApplyAsync(AdminAction.Retry, filter: new MessageFilter { BounceClasses = ["Throttled"] }, now: T0.AddMinutes(4));
        Assert.Equal(1, retried.Changed);
        Assert.Equal(0, (await ApplyAsync(AdminAction.Retry, filter: new MessageFilter { BounceClasses = ["Throttled"] }, now: T0.AddMinutes(4))).Changed);
        var claimed = await Spool.ClaimDueAsync(T0.AddMinutes(4), 100, Lease, Ct);
        Assert.Contains(throttled, claimed.Select(j => j.MessageId));
        Assert.DoesNotContain(blocked, claimed.Select(j => j.MessageId));
    }

    /// <summary>
    /// Searches by state and bounce class walk the recipients (migration 0022): every combination with domain, sender and
    /// time answers exactly the matching messages, newest first, each once (a message with two matching recipients too),
    /// the same whether read in one page or in pages of two across the cursor (two messages share each timestamp).
    /// </summary>
    [Fact]
    public async Task State_and_class_searches_match_exactly_and_page_across_the_cursor()
    {
        var messages = new List<(Guid Id, DateTimeOffset At, string Sender, List<(string Address, string Domain, RecipientState State, string? Class)> Recipients)>();
        var outcomes = new Dictionary<string, (RecipientState State, string? Class)>(StringComparer.Ordinal);
        (RecipientState, string?)[] first = [(RecipientState.Bounced, "InvalidRecipient"), (RecipientState.Deferred, "QuotaIssues"), (RecipientState.Delivered, null), (RecipientState.Bounced, "SpamBlock")];
        (RecipientState, string?)[] second = [(RecipientState.Bounced, "InvalidRecipient"), (RecipientState.Delivered, null), (RecipientState.Deferred, null)];
        for (var i = 0; i < 14; i++)
        {
            var at = T0.AddSeconds(i / 2);
            var sender = i % 3 == 0 ? "a@example.org" : "b@example.org";
            var r = ($"r{i}@{(i % 2 == 0 ? "one" : "two")}.test", i % 2 == 0 ? "one.test" : "two.test", first[i % 4].Item1, first[i % 4].Item2);
            var s2 = ($"s{i}@one.test", "one.test", second[i % 3].Item1, second[i % 3].Item2);
            outcomes[r.Item1] = (r.Item3, r.Item4);
            outcomes[s2.Item1] = (s2.Item3, s2.Item4);
            messages.Add((await StoreAsync(at, sender, r.Item1, s2.Item1), at, sender, [r, s2]));
        }

        foreach (var job in await Spool.ClaimDueAsync(T0.AddMinutes(1), 1000, Lease, Ct))
        {
            await Spool.CompleteAttemptAsync(job.MessageId, job.LeaseId,
            [
                .. job.Recipients.Select(c => new RecipientUpdate
                {
                    RecipientId = c.RecipientId,
                    State = outcomes[c.Address].State,
                    NextAttemptAt = outcomes[c.Address].State == RecipientState.Deferred ? T0.AddHours(1) : null,
                    AttemptedAt = T0.AddMinutes(1),
                    ReplyCode = outcomes[c.Address].State switch { RecipientState.Delivered => 250, RecipientState.Deferred => 451, _ => 550 },
                    BounceClass = outcomes[c.Address].Class,
                }),
            ], Ct);
        }

        // Two more, never attempted: one queued, one held.
        var queued = await StoreAsync(T0.AddSeconds(3), "a@example.org", "q@two.test");
        var held = await StoreAsync(T0.AddSeconds(9), "b@example.org", "h@one.test");
        await ApplyAsync(AdminAction.Hold, [held]);
        messages.Add((queued, T0.AddSeconds(3), "a@example.org", [("q@two.test", "two.test", RecipientState.Queued, null)]));
        messages.Add((held, T0.AddSeconds(9), "b@example.org", [("h@one.test", "one.test", RecipientState.Held, null)]));

        MessageFilter[] filters =
        [
            new() { States = [RecipientState.Bounced], BounceClasses = ["InvalidRecipient"] },
            new() { States = [RecipientState.Bounced] },
            new() { States = [RecipientState.Delivered] },
            new() { States = [RecipientState.Bounced, RecipientState.Deferred] },
            new() { BounceClasses = ["QuotaIssues"] },
            new() { BounceClasses = ["InvalidRecipient", "SpamBlock"] },
            new() { States = [RecipientState.Deferred, RecipientState.Bounced], BounceClasses = ["QuotaIssues", "InvalidRecipient"] },
            new() { States = [RecipientState.Bounced], Domain = "two.test" },
            new() { States = [RecipientState.Deferred], Domain = "two.test" },
            new() { BounceClasses = ["InvalidRecipient"], Domain = "one.test" },
            new() { States = [RecipientState.Bounced], Sender = "A@Example.org" },
            new() { BounceClasses = ["SpamBlock", "QuotaIssues"], Sender = "b@example.org" },
            new() { States = [RecipientState.Delivered], ReceivedFrom = T0.AddSeconds(1), ReceivedTo = T0.AddSeconds(4) },
            new() { States = [RecipientState.Bounced], BounceClasses = ["InvalidRecipient"], Recipient = "S3@one.test" },
            new() { States = [RecipientState.Queued, RecipientState.Held] },
            new() { States = [RecipientState.Held], BounceClasses = ["InvalidRecipient"] },
            new() { States = [RecipientState.InFlight] },
        ];
        foreach (var filter in filters)
        {
            var expected = messages
                .Where(m => (filter.Sender is null || string.Equals(filter.Sender, m.Sender, StringComparison.OrdinalIgnoreCase))
                    && (filter.ReceivedFrom is null || m.At >= filter.ReceivedFrom) && (filter.ReceivedTo is null || m.At < filter.ReceivedTo)
                    && m.Recipients.Any(r => (filter.States is null || filter.States.Contains(r.State))
                        && (filter.BounceClasses is null || (r.Class is not null && filter.BounceClasses.Contains(r.Class)))
                        && (filter.Domain is null || filter.Domain == r.Domain)
                        && (filter.Recipient is null || string.Equals(filter.Recipient, r.Address, StringComparison.OrdinalIgnoreCase))))
                .ToList();
            var whole = await Admin.ListMessagesAsync(new MessageListQuery { Filter = filter, Limit = 100 }, Ct);
            Assert.Null(whole.Next);
            Assert.Equal(expected.Select(m => m.Id).Order(), whole.Items.Select(m => m.Id).Order());
            Assert.Equal(expected.Select(m => m.At).OrderDescending(), whole.Items.Select(m => m.ReceivedAt));

            var paged = new List<Guid>();
            MessageCursor? after = null;
            do
            {
                var page = await Admin.ListMessagesAsync(new MessageListQuery { Filter = filter, Limit = 2, After = after }, Ct);
                Assert.True(page.Items.Count <= 2);
                paged.AddRange(page.Items.Select(m => m.Id));
                after = page.Next;
            }
            while (after is not null);

            Assert.Equal(whole.Items.Select(m => m.Id), paged);
        }
    }

    [Fact]
    public async Task Bounce_finishes_the_recipients_with_history_and_completes_the_message()
    {
        var id = await StoreAsync(T0, "s@example.org", "a@gone.test", "b@gone.test");
        await ApplyAsync(AdminAction.Hold, [id], filter: new MessageFilter { Recipient = "b@gone.test" });

        var result = await ApplyAsync(AdminAction.Bounce, [id]);
        Assert.Equal(2, result.Changed);
        Assert.Equal(["a@gone.test", "b@gone.test"], result.Bounced.Select(b => b.Address).Order(StringComparer.Ordinal));
        Assert.Equal(0, (await ApplyAsync(AdminAction.Bounce, [id])).Changed);

        var status = (await Spool.GetStatusAsync(id, Ct))!;
        Assert.All(status.Recipients, r => Assert.Equal(RecipientState.Bounced, r.State));
        Assert.All(status.Recipients, r => Assert.Equal(RecipientState.Bounced, Assert.Single(r.History).State));
        Assert.NotNull(status.CompletedAt);
    }

    [Fact]
    public async Task Delete_removes_messages_matching_a_filter_and_keeps_those_in_flight()
    {
        var idle = await StoreAsync(T0, "spam@bad.test", "a@x.test");
        var busy = await StoreAsync(T0, "spam@bad.test", "b@y.test");
        var other = await StoreAsync(T0, "good@ok.test", "c@x.test");
        await ApplyAsync(AdminAction.Hold, [idle]);
        await ApplyAsync(AdminAction.Hold, [other]);
        Assert.Single(await Spool.ClaimDueAsync(T0, 100, Lease, Ct));

        var result = await ApplyAsync(AdminAction.Delete, filter: new MessageFilter { Sender = "spam@bad.test" });
        Assert.Equal(1, result.Changed);
        Assert.Equal(1, result.SkippedInFlight);
        Assert.Null(await Spool.GetStatusAsync(idle, Ct));
        Assert.NotNull(await Spool.GetStatusAsync(busy, Ct));
        Assert.NotNull(await Spool.GetStatusAsync(other, Ct));
        Assert.Equal(0, (await ApplyAsync(AdminAction.Delete, [idle])).Changed);
    }

    [Fact]
    public async Task A_filter_larger_than_a_chunk_is_worked_through_whole()
    {
        var count = SpoolAdminLimits.ActionChunk + 3;
        for (var i = 0; i < count; i++)
        {
            await StoreAsync(T0, "bulk@example.org", $"r{i}@bulk.test");
        }

        Assert.Equal(count, (await ApplyAsync(AdminAction.Hold, filter: new MessageFilter { Domain = "bulk.test" })).Changed);
        Assert.Equal(count, (await ApplyAsync(AdminAction.Release, filter: new MessageFilter { Domain = "bulk.test" })).Changed);
    }

    [Fact]
    public async Task Every_action_is_audited_with_who_what_and_how_many()
    {
        var id = await StoreAsync(T0, "s@example.org", "a@audit.test");
        var first = await ApplyAsync(AdminAction.Hold, [id]);
        var second = await ApplyAsync(AdminAction.Hold, [id]);
        var audit = await Admin.ListAuditAsync(null, 10, Ct);
        Assert.Equal([second.AuditId, first.AuditId], audit.Select(a => a.Id));
        Assert.Equal("tester", audit[1].Actor);
        Assert.Equal("hold", audit[1].Action);
        Assert.Equal(id.ToString(), audit[1].Target);
        Assert.Equal(1, audit[1].Changed);
        Assert.Equal(0, audit[0].Changed);
        Assert.Equal([first.AuditId], (await Admin.ListAuditAsync(second.AuditId, 10, Ct)).Select(a => a.Id));
    }

    [Fact]
    public async Task Summary_counts_pending_recipients_by_domain_state_and_age()
    {
        var now = T0.AddHours(3);
        await StoreAsync(now.AddMinutes(-1), "s@example.org", "a@big.test", "b@big.test");
        var old = await StoreAsync(now.AddMinutes(-100), "s@example.org", "c@big.test", "d@small.test");
        await ApplyAsync(AdminAction.Hold, [old], filter: new MessageFilter { Domain = "small.test" });

        var summary = await Admin.SummarizeAsync(now, 10, Ct);
        Assert.Equal(4, summary.Total.Total);
        Assert.Equal(2, summary.DomainCount);
        var big = summary.Domains[0];
        Assert.Equal("big.test", big.Domain);
        Assert.Equal(3, big.Total);
        Assert.Equal(2, big.ByAge[0]);
        Assert.Equal(1, big.ByAge[SpoolAdminShared.Bucket(now, now.AddMinutes(-100))]);
        Assert.Equal(now.AddMinutes(-100), big.OldestReceivedAt);
        Assert.Equal(1, summary.Domains[1].ByState[RecipientState.Held]);
    }

    /// <summary>
    /// The summary reads the received time the recipient row carries (migration 0020), never the message: every path that
    /// moves a recipient (claim, result, hold, release, bounce, delete) keeps its age, and final recipients leave the summary.
    /// </summary>
    [Fact]
    public async Task Summary_keeps_each_recipients_age_through_claims_results_and_actions()
    {
        var old = T0.AddMinutes(-300);
        var young = T0.AddMinutes(-2);
        var a = await StoreAsync(old, "s@example.org", "a1@age.test", "a2@age.test");

        // In flight, then deferred (a1) and delivered (a2): a1 keeps the age of its message.
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 100, Lease, Ct));
        var inFlight = await Admin.SummarizeAsync(T0, 10, Ct);
        Assert.Equal(2, inFlight.Domains.Single().ByState[RecipientState.InFlight]);
        Assert.Equal(old, inFlight.Total.OldestReceivedAt);
        var first = job.Recipients.Single(r => r.Address == "a1@age.test").RecipientId;
        var second = job.Recipients.Single(r => r.Address == "a2@age.test").RecipientId;
        await Spool.CompleteAttemptAsync(a, job.LeaseId,
        [
            new RecipientUpdate { RecipientId = first, State = RecipientState.Deferred, NextAttemptAt = T0.AddHours(1), AttemptedAt = T0, ReplyCode = 451 },
            new RecipientUpdate { RecipientId = second, State = RecipientState.Delivered, AttemptedAt = T0, ReplyCode = 250 },
        ], Ct);
        var b = await StoreAsync(young, "s@example.org", "b1@age.test");
        var c = await StoreAsync(young, "s@example.org", "c1@gone.test");

        // Held and released (b1), bounced (c1 leaves the summary), a message deleted.
        await ApplyAsync(AdminAction.Hold, [b]);
        var held = await Admin.SummarizeAsync(T0, 10, Ct);
        var age = held.Domains.Single(d => d.Domain == "age.test");
        Assert.Equal(2, age.Total);
        Assert.Equal(1, age.ByState[RecipientState.Deferred]);
        Assert.Equal(1, age.ByState[RecipientState.Held]);
        Assert.Equal(1, age.ByAge[SpoolAdminShared.Bucket(T0, old)]);
        Assert.Equal(1, age.ByAge[SpoolAdminShared.Bucket(T0, young)]);
        Assert.Equal(old, age.OldestReceivedAt);

        await ApplyAsync(AdminAction.Release, [b]);
        await ApplyAsync(AdminAction.Bounce, [c]);
        var after = await Admin.SummarizeAsync(T0, 10, Ct);
        var released = Assert.Single(after.Domains);
        Assert.Equal("age.test", released.Domain);
        Assert.Equal(2, released.Total);
        Assert.Equal(1, released.ByState[RecipientState.Queued]);
        Assert.Equal(1, released.ByState[RecipientState.Deferred]);
        Assert.Equal(old, after.Total.OldestReceivedAt);

        await ApplyAsync(AdminAction.Delete, [a]);
        var last = await Admin.SummarizeAsync(T0, 10, Ct);
        Assert.Equal(1, last.Total.Total);
        Assert.Equal(young, last.Total.OldestReceivedAt);
        Assert.Equal(1, last.Total.ByState[RecipientState.Queued]);
    }

    [Fact]
    public async Task Suppressions_page_by_address_with_prefix_domain_and_source_filters()
    {
        foreach (var address in new[] { "a1@x.test", "a2@y.test", "b1@x.test", "c1@x.test" })
        {
            await Stores.Policy.AddSuppressionAsync(new Suppression { Address = address, Reason = "r", CreatedAt = T0, Source = address.StartsWith('c') ? SuppressionSources.Bounce : SuppressionSources.Api }, Ct);
        }

        var first = await Stores.SuppressionAdmin.ListAsync(new SuppressionQuery { Limit = 2 }, Ct);
        Assert.Equal(["a1@x.test", "a2@y.test"], first.Select(s => s.Address));
        var second = await Stores.SuppressionAdmin.ListAsync(new SuppressionQuery { Limit = 2, After = first[^1].Address }, Ct);
        Assert.Equal(["b1@x.test", "c1@x.test"], second.Select(s => s.Address));
        Assert.Equal(["a1@x.test", "a2@y.test"], (await Stores.SuppressionAdmin.ListAsync(new SuppressionQuery { Prefix = "A" }, Ct)).Select(s => s.Address));
        Assert.Equal(["a1@x.test", "b1@x.test", "c1@x.test"], (await Stores.SuppressionAdmin.ListAsync(new SuppressionQuery { Domain = "x.test" }, Ct)).Select(s => s.Address));
        Assert.Equal(["c1@x.test"], (await Stores.SuppressionAdmin.ListAsync(new SuppressionQuery { Source = SuppressionSources.Bounce }, Ct)).Select(s => s.Address));
    }
}

public sealed class PostgresSpoolAdminTests : SpoolAdminContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await PostgresStores.CreateAsync();
}

public sealed class SqliteSpoolAdminTests : SpoolAdminContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await SqliteStores.CreateAsync();
}
