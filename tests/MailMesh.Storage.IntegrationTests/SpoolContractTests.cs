using System.Collections.Concurrent;
using System.Text;
using MailMesh.Testing.Infrastructure;

namespace MailMesh.Storage.IntegrationTests;

/// <summary>
/// The <see cref="ISpool"/> contract. Every test gets a fresh, migrated store; time is always a parameter
/// (<see cref="T0"/> plus offsets), so nothing sleeps.
/// </summary>
public abstract partial class SpoolContractTests : IAsyncLifetime
{
    protected static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 5, 678, TimeSpan.Zero);
    protected static readonly TimeSpan Lease = TimeSpan.FromMinutes(5);

    private Stores? _stores;

    protected Stores Stores => _stores!;

    protected ISpool Spool => Stores.Spool;

    protected abstract Task<Stores> CreateStoresAsync();

    public async Task InitializeAsync() => _stores = await CreateStoresAsync();

    public async Task DisposeAsync()
    {
        if (_stores is not null)
        {
            await _stores.DisposeAsync();
        }
    }

    protected static NewMessage Message(params string[] recipients) => new()
    {
        Id = Guid.NewGuid(),
        Sender = "sender@example.org",
        Recipients = [.. recipients.Select(r => new NewRecipient { Address = r })],
        Content = "Subject: hi\r\n\r\nbody\r\n"u8.ToArray(),
        ReceivedAt = T0,
    };

    private static CancellationToken Ct => CancellationToken.None;

    [Fact]
    public async Task Store_then_get_round_trips_envelope_and_content_byte_exact()
    {
        // Every byte value, including NUL, bare CR/LF and 8-bit bytes (RFC 6152 8BITMIME, RFC 3030 BINARYMIME).
        var content = new byte[1024 + 256];
        "Subject: caf\u00e9\r\n\r\n"u8.CopyTo(content);
        for (var i = 0; i < 1024; i++)
        {
            content[256 + i] = (byte)(i % 256);
        }

        var message = Message("a@example.com") with
        {
            Sender = "",
            Content = content,
            ReceivedAt = new DateTimeOffset(2030, 1, 2, 5, 4, 5, 678, TimeSpan.FromHours(2)),
            Origin = MessageOrigin.Http,
            ClientAddress = "192.0.2.1",
            ClientHelo = "client.example",
            AuthenticatedUser = "alice",
            BodyType = BodyType.BinaryMime,
            SmtpUtf8 = true,
            RequireTls = true,
            EnvelopeId = "env-1",
            Ret = "HDRS",
            TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        };

        Assert.True(await Spool.StoreAsync(message, Ct));
        var stored = await Spool.GetMessageAsync(message.Id, Ct);

        Assert.NotNull(stored);
        Assert.Equal(content, stored.Content.ToArray());
        Assert.Equal(message.Id, stored.Id);
        Assert.Equal("", stored.Sender);
        Assert.Equal(T0, stored.ReceivedAt);
        Assert.Equal(TimeSpan.Zero, stored.ReceivedAt.Offset);
        Assert.Equal(MessageOrigin.Http, stored.Origin);
        Assert.Equal("192.0.2.1", stored.ClientAddress);
        Assert.Equal("client.example", stored.ClientHelo);
        Assert.Equal("alice", stored.AuthenticatedUser);
        Assert.Equal(BodyType.BinaryMime, stored.BodyType);
        Assert.True(stored.SmtpUtf8);
        Assert.True(stored.RequireTls);
        Assert.Equal("env-1", stored.EnvelopeId);
        Assert.Equal("HDRS", stored.Ret);
        Assert.Equal(message.TraceParent, stored.TraceParent);
        Assert.Null(await Spool.GetMessageAsync(Guid.NewGuid(), Ct));
    }

    [Fact]
    public async Task Store_of_a_slice_stores_only_the_slice()
    {
        var buffer = "xxSubject: s\r\n\r\nb\r\nyy"u8.ToArray();
        var message = Message("a@example.com") with { Content = buffer.AsMemory(2, buffer.Length - 4) };
        await Spool.StoreAsync(message, Ct);

        var stored = await Spool.GetMessageAsync(message.Id, Ct);
        Assert.Equal("Subject: s\r\n\r\nb\r\n"u8.ToArray(), stored!.Content.ToArray());
        Assert.Equal(buffer.Length - 4, (await Spool.GetStatusAsync(message.Id, Ct))!.Size);
    }

    [Fact]
    public async Task Large_content_in_a_slice_of_a_bigger_buffer_round_trips_and_a_duplicate_keeps_the_first()
    {
        // Issue 7 §3: Ingress hands over a slice of a pooled receive buffer; a large one is streamed into the store
        // (SQLite: zeroblob and incremental blob I/O), never copied to an exact-size array first.
        var buffer = new byte[(3 * 1024 * 1024) + 100];
        for (var i = 0; i < buffer.Length; i++)
        {
            buffer[i] = (byte)(i * 7);
        }

        var content = buffer.AsMemory(10, (3 * 1024 * 1024) + 17);
        var message = Message("a@example.com") with { Content = content };
        Assert.True(await Spool.StoreAsync(message, Ct));
        Assert.False(await Spool.StoreAsync(message with { Content = buffer.AsMemory(0, 300_000) }, Ct));

        var stored = await Spool.GetMessageAsync(message.Id, Ct);
        Assert.True(content.Span.SequenceEqual(stored!.Content.Span));
        Assert.Equal(content.Length, (await Spool.GetStatusAsync(message.Id, Ct))!.Size);
    }

    [Fact]
    public async Task A_streamed_body_of_several_MiB_round_trips_byte_for_byte_and_every_opened_stream_is_disposed()
    {
        // Issue 7 §3: Ingress spills a large body to a file and hands the store a stream, not bytes.
        var bytes = new byte[(5 * 1024 * 1024) + 333];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (byte)((i * 31) ^ (i >> 11));
        }

        var opened = new List<TrackingStream>();
        var source = new MessageContentSource(bytes.Length, () =>
        {
            var stream = new TrackingStream(bytes);
            lock (opened)
            {
                opened.Add(stream);
            }

            return stream;
        });
        var message = Message("a@example.com") with { Content = ReadOnlyMemory<byte>.Empty, ContentSource = source };
        Assert.Equal(bytes.Length, message.ContentLength);
        Assert.True(await Spool.StoreAsync(message, Ct));
        Assert.False(await Spool.StoreAsync(message, Ct));

        var stored = await Spool.GetMessageAsync(message.Id, Ct);
        Assert.True(bytes.AsSpan().SequenceEqual(stored!.Content.Span));
        Assert.Equal(bytes.Length, (await Spool.GetStatusAsync(message.Id, Ct))!.Size);
        Assert.NotEmpty(opened);
        Assert.All(opened, s => Assert.True(s.Disposed));
    }

    private sealed class TrackingStream(byte[] bytes) : MemoryStream(bytes, writable: false)
    {
        public bool Disposed { get; private set; }

        protected override void Dispose(bool disposing)
        {
            Disposed = true;
            base.Dispose(disposing);
        }
    }

    [Fact]
    public async Task Storing_the_same_id_twice_returns_false_and_keeps_the_first()
    {
        var first = Message("a@example.com");
        var second = first with { Sender = "other@example.org", Recipients = [new NewRecipient { Address = "b@example.net" }] };

        Assert.True(await Spool.StoreAsync(first, Ct));
        Assert.False(await Spool.StoreAsync(second, Ct));

        var status = await Spool.GetStatusAsync(first.Id, Ct);
        Assert.Equal("sender@example.org", status!.Sender);
        Assert.Equal("a@example.com", Assert.Single(status.Recipients).Address);
    }

    /// <summary>Stores at the same moment, some of them the same message twice: each id is stored once, as the store that said so.</summary>
    [Fact]
    public async Task Concurrent_stores_of_the_same_ids_store_each_once_and_say_which()
    {
        var originals = Enumerable.Range(0, 24).Select(i => Message($"r{i}@example.com") with
        {
            Content = Encoding.ASCII.GetBytes($"Subject: {i}\r\n\r\nfirst\r\n"),
        }).ToList();
        var copies = originals.Where((_, i) => i % 3 == 0).Select(m => m with { Content = Encoding.ASCII.GetBytes("Subject: copy\r\n\r\nsecond\r\n") }).ToList();
        var all = originals.Concat(copies).OrderBy(_ => Random.Shared.Next()).ToList();

        var answers = await Task.WhenAll(all.Select(m => Spool.StoreAsync(m, Ct)));

        foreach (var group in all.Select((m, i) => (Message: m, Stored: answers[i])).GroupBy(x => x.Message.Id))
        {
            var winner = Assert.Single(group, x => x.Stored);
            var stored = await Spool.GetMessageAsync(group.Key, Ct);
            Assert.Equal(winner.Message.Content.ToArray(), stored!.Content.ToArray());
        }

        Assert.Equal(originals.Count, (await Spool.ClaimDueAsync(T0, 1000, Lease, Ct)).Count);
    }

    [Fact]
    public async Task Claim_groups_recipients_by_message_and_domain_under_one_lease_each()
    {
        var message = Message("a@Example.COM", "b@example.com", "c@other.example") with
        {
            TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Recipients =
            [
                new NewRecipient { Address = "a@Example.COM", Notify = "FAILURE,DELAY", OriginalRecipient = "rfc822;a@Example.COM" },
                new NewRecipient { Address = "b@example.com" },
                new NewRecipient { Address = "c@other.example" },
            ],
        };
        await Spool.StoreAsync(message, Ct);

        var jobs = await Spool.ClaimDueAsync(T0, 100, Lease, Ct);

        Assert.Equal(2, jobs.Count);
        Assert.All(jobs, job =>
        {
            Assert.Equal(message.Id, job.MessageId);
            Assert.Equal(T0 + Lease, job.LeaseExpiresAt);
            Assert.Equal(T0, job.ReceivedAt);
            Assert.Equal(message.TraceParent, job.TraceParent);
            Assert.All(job.Recipients, r => Assert.Equal(1, r.Attempt));
        });
        Assert.NotEqual(jobs[0].LeaseId, jobs[1].LeaseId);

        var example = Assert.Single(jobs, j => j.Domain == "example.com");
        Assert.Equal(["a@Example.COM", "b@example.com"], example.Recipients.Select(r => r.Address));
        Assert.Equal("FAILURE,DELAY", example.Recipients[0].Notify);
        Assert.Equal("rfc822;a@Example.COM", example.Recipients[0].OriginalRecipient);
        Assert.Equal("c@other.example", Assert.Single(Assert.Single(jobs, j => j.Domain == "other.example").Recipients).Address);

        var status = await Spool.GetStatusAsync(message.Id, Ct);
        Assert.All(status!.Recipients, r => Assert.Equal(RecipientState.InFlight, r.State));
        Assert.All(status.Recipients, r => Assert.Equal(1, r.Attempts));
    }

    [Fact]
    public async Task Internationalised_domains_group_in_their_a_label_form()
    {
        var message = Message("a@b\u00fccher.example", "b@xn--bcher-kva.example", "c@[192.0.2.7]");
        await Spool.StoreAsync(message, Ct);

        var jobs = await Spool.ClaimDueAsync(T0, 10, Lease, Ct);

        Assert.Equal(["[192.0.2.7]", "xn--bcher-kva.example"], jobs.Select(j => j.Domain).Order(StringComparer.Ordinal));
        Assert.Equal(2, jobs.Single(j => j.Domain == "xn--bcher-kva.example").Recipients.Count);
    }

    [Fact]
    public async Task A_claimed_recipient_is_claimed_again_only_after_its_lease_expires_with_the_next_attempt_number()
    {
        var message = Message("a@example.com");
        await Spool.StoreAsync(message, Ct);

        var first = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, Ct));
        Assert.Empty(await Spool.ClaimDueAsync(T0, 10, Lease, Ct));
        Assert.Empty(await Spool.ClaimDueAsync(T0 + Lease - TimeSpan.FromMilliseconds(1), 10, Lease, Ct));

        var second = Assert.Single(await Spool.ClaimDueAsync(T0 + Lease, 10, Lease, Ct));
        Assert.NotEqual(first.LeaseId, second.LeaseId);
        Assert.Equal(2, Assert.Single(second.Recipients).Attempt);
        Assert.Equal(T0 + Lease + Lease, second.LeaseExpiresAt);

        // The worker that held the first lease comes back late: nothing of its result applies.
        var late = await Spool.CompleteAttemptAsync(message.Id, first.LeaseId, [Delivered(second.Recipients[0].RecipientId, T0)], Ct);
        Assert.Empty(late);
        Assert.Single(await Spool.CompleteAttemptAsync(message.Id, second.LeaseId, [Delivered(second.Recipients[0].RecipientId, T0 + Lease)], Ct));
    }

    [Fact]
    public async Task Released_leases_make_in_flight_recipients_due_at_once_and_void_the_old_lease()
    {
        var message = Message("a@example.com", "b@example.org");
        await Spool.StoreAsync(message, Ct);
        var claimed = await Spool.ClaimDueAsync(T0, 10, Lease, Ct);
        Assert.Equal(2, claimed.Count);

        Assert.Equal(2, await Spool.ReleaseLeasesAsync(T0 + TimeSpan.FromSeconds(1), Ct));
        Assert.Equal(0, await Spool.ReleaseLeasesAsync(T0 + TimeSpan.FromSeconds(1), Ct));

        // Due again long before the leases would have expired; the old leases no longer apply.
        var again = await Spool.ClaimDueAsync(T0 + TimeSpan.FromSeconds(1), 10, Lease, Ct);
        Assert.Equal(2, again.Count);
        var old = claimed[0];
        Assert.Empty(await Spool.CompleteAttemptAsync(message.Id, old.LeaseId, [Delivered(old.Recipients[0].RecipientId, T0)], Ct));
    }

    [Fact]
    public async Task Not_before_and_deferred_recipients_become_due_at_their_next_attempt()
    {
        var message = Message("a@example.com") with { NotBefore = T0 + TimeSpan.FromMinutes(10) };
        await Spool.StoreAsync(message, Ct);

        Assert.Empty(await Spool.ClaimDueAsync(T0, 10, Lease, Ct));
        var job = Assert.Single(await Spool.ClaimDueAsync(T0 + TimeSpan.FromMinutes(10), 10, Lease, Ct));
        var id = job.Recipients[0].RecipientId;

        var retryAt = T0 + TimeSpan.FromMinutes(30);
        var deferred = new RecipientUpdate
        {
            RecipientId = id,
            State = RecipientState.Deferred,
            NextAttemptAt = retryAt,
            AttemptedAt = T0 + TimeSpan.FromMinutes(11),
            ReplyCode = 451,
            EnhancedCode = "4.3.0",
            ReplyText = "try later",
            RemoteHost = "mx.example.com",
        };
        Assert.Single(await Spool.CompleteAttemptAsync(message.Id, job.LeaseId, [deferred], Ct));

        var status = Assert.Single((await Spool.GetStatusAsync(message.Id, Ct))!.Recipients);
        Assert.Equal(RecipientState.Deferred, status.State);
        Assert.Equal(retryAt, status.NextAttemptAt);

        Assert.Empty(await Spool.ClaimDueAsync(retryAt - TimeSpan.FromMilliseconds(1), 10, Lease, Ct));
        var retry = Assert.Single(await Spool.ClaimDueAsync(retryAt, 10, Lease, Ct));
        Assert.Equal(2, Assert.Single(retry.Recipients).Attempt);
    }

    [Fact]
    public async Task Claim_takes_at_most_max_recipients_most_overdue_first()
    {
        var late = Message("late@example.com") with { NotBefore = T0 + TimeSpan.FromSeconds(2) };
        var early = Message("early@example.com") with { NotBefore = T0 + TimeSpan.FromSeconds(1) };
        var many = Message([.. Enumerable.Range(0, 5).Select(i => $"r{i}@many.example")]) with { NotBefore = T0 + TimeSpan.FromSeconds(3) };
        await Spool.StoreAsync(late, Ct);
        await Spool.StoreAsync(many, Ct);
        await Spool.StoreAsync(early, Ct);

        var now = T0 + TimeSpan.FromMinutes(1);
        var first = await Spool.ClaimDueAsync(now, 4, Lease, Ct);
        Assert.Equal(4, first.Sum(j => j.Recipients.Count));
        Assert.Equal([early.Id, late.Id, many.Id], first.Select(j => j.MessageId));
        Assert.Equal(2, first[2].Recipients.Count);

        var rest = await Spool.ClaimDueAsync(now, 100, Lease, Ct);
        Assert.Equal(3, Assert.Single(rest).Recipients.Count);
        Assert.NotEqual(first[2].LeaseId, rest[0].LeaseId);
    }

    [Fact]
    public async Task A_message_with_a_hundred_recipients_is_stored_and_claimed_whole()
    {
        var message = Message([.. Enumerable.Range(0, 100).Select(i => $"user{i}@bulk.example")]);
        Assert.True(await Spool.StoreAsync(message, Ct));

        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 1000, Lease, Ct));
        Assert.Equal(message.Recipients.Select(r => r.Address), job.Recipients.Select(r => r.Address));
    }

    [Fact]
    public async Task Concurrent_claimers_never_claim_the_same_recipient_and_together_claim_all()
    {
        var messages = Enumerable.Range(0, 20)
            .Select(m => Message([.. Enumerable.Range(0, 10).Select(r => $"r{r}@d{r % 3}.m{m}.example")]))
            .ToList();
        foreach (var message in messages)
        {
            await Spool.StoreAsync(message, Ct);
        }

        var claims = new ConcurrentBag<(long RecipientId, Guid LeaseId)>();
        var claimers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            var spool = Stores.OpenSpool();
            while (true)
            {
                var jobs = await spool.ClaimDueAsync(T0, 7, Lease, Ct);
                if (jobs.Count == 0)
                {
                    return;
                }

                foreach (var job in jobs)
                {
                    foreach (var recipient in job.Recipients)
                    {
                        claims.Add((recipient.RecipientId, job.LeaseId));
                    }
                }
            }
        }));
        await Task.WhenAll(claimers);

        var ids = claims.Select(c => c.RecipientId).ToList();
        Assert.Equal(200, ids.Count);
        Assert.Equal(200, ids.Distinct().Count());
        var all = new HashSet<long>();
        foreach (var message in messages)
        {
            all.UnionWith((await Spool.GetStatusAsync(message.Id, Ct))!.Recipients.Select(r => r.RecipientId));
        }

        Assert.True(all.SetEquals(ids));
        Assert.Equal(200, (await Spool.CountByStateAsync(Ct))[RecipientState.InFlight]);
    }

    [Fact]
    public async Task Complete_attempt_is_lease_checked_and_idempotent()
    {
        var message = Message("a@example.com", "b@example.com");
        await Spool.StoreAsync(message, Ct);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, Ct));
        var updates = job.Recipients.Select(r => Delivered(r.RecipientId, T0 + TimeSpan.FromSeconds(1))).ToList();

        Assert.Empty(await Spool.CompleteAttemptAsync(message.Id, Guid.NewGuid(), updates, Ct));
        Assert.Empty(await Spool.CompleteAttemptAsync(Guid.NewGuid(), job.LeaseId, updates, Ct));

        var applied = await Spool.CompleteAttemptAsync(message.Id, job.LeaseId, updates, Ct);
        Assert.Equal(updates, applied);
        Assert.Empty(await Spool.CompleteAttemptAsync(message.Id, job.LeaseId, updates, Ct));

        var status = await Spool.GetStatusAsync(message.Id, Ct);
        Assert.All(status!.Recipients, r =>
        {
            Assert.Equal(RecipientState.Delivered, r.State);
            Assert.Single(r.History);
        });

        // A final recipient is never due again.
        Assert.Empty(await Spool.ClaimDueAsync(T0 + TimeSpan.FromDays(10), 10, Lease, Ct));
    }

    [Fact]
    public async Task Complete_attempt_applies_only_the_recipients_it_names()
    {
        var message = Message("a@example.com", "b@example.com");
        await Spool.StoreAsync(message, Ct);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, Ct));

        var applied = await Spool.CompleteAttemptAsync(message.Id, job.LeaseId, [Delivered(job.Recipients[0].RecipientId, T0)], Ct);
        Assert.Single(applied);

        var rest = await Spool.CompleteAttemptAsync(message.Id, job.LeaseId, [Delivered(job.Recipients[1].RecipientId, T0)], Ct);
        Assert.Single(rest);
    }

    [Fact]
    public async Task Status_reports_each_recipient_with_its_last_reply_and_history()
    {
        var message = Message("a@example.com", "b@example.net") with
        {
            Recipients =
            [
                new NewRecipient { Address = "a@example.com", Notify = "NEVER" },
                new NewRecipient { Address = "b@example.net" },
            ],
        };
        await Spool.StoreAsync(message, Ct);

        var jobs = await Spool.ClaimDueAsync(T0, 10, Lease, Ct);
        var a = jobs.Single(j => j.Domain == "example.com");
        var b = jobs.Single(j => j.Domain == "example.net");
        var t1 = T0 + TimeSpan.FromSeconds(1);
        await Spool.CompleteAttemptAsync(message.Id, a.LeaseId,
        [
            new RecipientUpdate
            {
                RecipientId = a.Recipients[0].RecipientId,
                State = RecipientState.Deferred,
                NextAttemptAt = t1 + TimeSpan.FromMinutes(1),
                AttemptedAt = t1,
                ReplyCode = 421,
                EnhancedCode = "4.7.0",
                ReplyText = "busy",
                RemoteHost = "mx1.example.com",
            },
        ], Ct);
        var retry = Assert.Single(await Spool.ClaimDueAsync(t1 + TimeSpan.FromMinutes(1), 10, Lease, Ct));
        var t2 = t1 + TimeSpan.FromMinutes(2);
        await Spool.CompleteAttemptAsync(message.Id, retry.LeaseId,
        [
            new RecipientUpdate
            {
                RecipientId = a.Recipients[0].RecipientId,
                State = RecipientState.Bounced,
                AttemptedAt = t2,
                ReplyCode = 550,
                EnhancedCode = "5.1.1",
                ReplyText = "no such user",
                RemoteHost = "mx2.example.com",
            },
        ], Ct);

        var status = await Spool.GetStatusAsync(message.Id, Ct);
        Assert.NotNull(status);
        Assert.Equal(message.Id, status.Id);
        Assert.Equal("sender@example.org", status.Sender);
        Assert.Equal(T0, status.ReceivedAt);
        Assert.Equal(message.Content.Length, status.Size);
        Assert.Equal(MessageOrigin.Smtp, status.Origin);
        Assert.Null(status.CompletedAt);

        var ra = status.Recipients[0];
        Assert.Equal("a@example.com", ra.Address);
        Assert.Equal("example.com", ra.Domain);
        Assert.Equal(RecipientState.Bounced, ra.State);
        Assert.Equal(2, ra.Attempts);
        Assert.Null(ra.NextAttemptAt);
        Assert.Equal(550, ra.LastReplyCode);
        Assert.Equal("5.1.1", ra.LastEnhancedCode);
        Assert.Equal("no such user", ra.LastReplyText);
        Assert.Equal("mx2.example.com", ra.LastRemoteHost);
        Assert.Equal(t2, ra.UpdatedAt);
        Assert.Equal("NEVER", ra.Notify);
        Assert.Equal(2, ra.History.Count);
        Assert.Equal(new AttemptRecord { AttemptedAt = t1, State = RecipientState.Deferred, ReplyCode = 421, EnhancedCode = "4.7.0", ReplyText = "busy", RemoteHost = "mx1.example.com" }, ra.History[0]);
        Assert.Equal(new AttemptRecord { AttemptedAt = t2, State = RecipientState.Bounced, ReplyCode = 550, EnhancedCode = "5.1.1", ReplyText = "no such user", RemoteHost = "mx2.example.com" }, ra.History[1]);

        var rb = status.Recipients[1];
        Assert.Equal(RecipientState.InFlight, rb.State);
        Assert.Equal(b.Recipients[0].RecipientId, rb.RecipientId);
        Assert.Empty(rb.History);

        Assert.Null(await Spool.GetStatusAsync(Guid.NewGuid(), Ct));
    }

    [Fact]
    public async Task Completing_attempts_in_a_batch_applies_each_as_alone_in_one_transaction()
    {
        // Issue 8: Queue applies its recorded results in batches. Two messages (one of them with two domains, both
        // jobs in the batch), a stale lease and an attempt of an unknown message in the same batch.
        var split = Message("a@one.example", "b@two.example");
        var single = Message("c@three.example");
        var stale = Message("d@four.example");
        foreach (var message in new[] { split, single, stale })
        {
            await Spool.StoreAsync(message, Ct);
        }

        var jobs = await Spool.ClaimDueAsync(T0, 10, Lease, Ct);
        DeliveryJob Job(Guid id, string domain) => jobs.Single(j => j.MessageId == id && j.Domain == domain);
        var t1 = T0 + TimeSpan.FromSeconds(1);
        var t2 = T0 + TimeSpan.FromSeconds(2);
        var deferred = new RecipientUpdate
        {
            RecipientId = Job(single.Id, "three.example").Recipients[0].RecipientId,
            State = RecipientState.Deferred,
            NextAttemptAt = T0 + TimeSpan.FromMinutes(5),
            AttemptedAt = t1,
            ReplyCode = 451,
            EnhancedCode = "4.3.0",
            ReplyText = "later",
            RemoteHost = "mx.three.example",
        };
        AttemptCompletion Completion(DeliveryJob job, params RecipientUpdate[] updates) =>
            new() { MessageId = job.MessageId, LeaseId = job.LeaseId, Updates = updates };
        var attempts = new[]
        {
            Completion(Job(split.Id, "one.example"), Delivered(Job(split.Id, "one.example").Recipients[0].RecipientId, t1)),
            Completion(Job(single.Id, "three.example"), deferred),
            Completion(Job(split.Id, "two.example"), Delivered(Job(split.Id, "two.example").Recipients[0].RecipientId, t2)),
            Completion(Job(stale.Id, "four.example") with { LeaseId = Guid.NewGuid() }, Delivered(Job(stale.Id, "four.example").Recipients[0].RecipientId, t1)),
            new AttemptCompletion { MessageId = Guid.NewGuid(), LeaseId = Guid.NewGuid(), Updates = [Delivered(424242, t1)] },
            new AttemptCompletion { MessageId = single.Id, LeaseId = Guid.NewGuid(), Updates = [] },
        };

        var applied = await Spool.CompleteAttemptsAsync(attempts, Ct);

        Assert.Equal(attempts.Length, applied.Count);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(attempts[i].Updates, applied[i]);
        }

        Assert.Empty(applied[3]);
        Assert.Empty(applied[4]);
        Assert.Empty(applied[5]);

        // The same batch again changes nothing: every lease is used up.
        Assert.All(await Spool.CompleteAttemptsAsync(attempts, Ct), Assert.Empty);

        var statuses = await Spool.GetStatusesAsync([split.Id, single.Id, stale.Id, Guid.NewGuid()], Ct);
        Assert.Equal(3, statuses.Count);
        Assert.Equal(t2, statuses[split.Id].CompletedAt);
        Assert.All(statuses[split.Id].Recipients, r => Assert.Equal(RecipientState.Delivered, r.State));
        var three = Assert.Single(statuses[single.Id].Recipients);
        Assert.Equal((RecipientState.Deferred, 451, "4.3.0", "later", "mx.three.example"), (three.State, three.LastReplyCode, three.LastEnhancedCode, three.LastReplyText, three.LastRemoteHost));
        Assert.Null(statuses[single.Id].CompletedAt);
        Assert.Equal(RecipientState.InFlight, Assert.Single(statuses[stale.Id].Recipients).State);

        // The batch's statuses are GetStatusAsync's without the history, which the single read still has.
        foreach (var (id, status) in statuses)
        {
            var full = (await Spool.GetStatusAsync(id, Ct))!;
            Assert.All(status.Recipients, r => Assert.Empty(r.History));
            Assert.Equal(full with { Recipients = [] }, status with { Recipients = [] });
            Assert.Equal(full.Recipients.Select(r => r with { History = [] }), status.Recipients);
        }

        Assert.Single((await Spool.GetStatusAsync(split.Id, Ct))!.Recipients[0].History);
        Assert.Empty(await Spool.GetStatusesAsync([], Ct));
        Assert.Empty(await Spool.CompleteAttemptsAsync([], Ct));
    }

    [Fact]
    public async Task Batches_that_share_messages_complete_concurrently_without_deadlock()
    {
        // Two appliers, each with a batch holding one job of every message, in opposite orders.
        var messages = Enumerable.Range(0, 6).Select(_ => Message("x@one.example", "y@two.example")).ToList();
        foreach (var message in messages)
        {
            await Spool.StoreAsync(message, Ct);
        }

        var jobs = await Spool.ClaimDueAsync(T0, 100, Lease, Ct);
        AttemptCompletion[] Batch(string domain) => [.. jobs.Where(j => j.Domain == domain).Select(j => new AttemptCompletion
        {
            MessageId = j.MessageId,
            LeaseId = j.LeaseId,
            Updates = [Delivered(j.Recipients[0].RecipientId, T0)],
        })];
        var first = Batch("one.example");
        var second = Batch("two.example").Reverse().ToArray();

        var results = await Task.WhenAll(
            Task.Run(() => Stores.OpenSpool().CompleteAttemptsAsync(first, Ct)),
            Task.Run(() => Stores.OpenSpool().CompleteAttemptsAsync(second, Ct)));

        Assert.All(results.SelectMany(r => r), applied => Assert.Single(applied));
        var statuses = await Spool.GetStatusesAsync([.. messages.Select(m => m.Id)], Ct);
        Assert.All(statuses.Values, s => Assert.Equal(T0, s.CompletedAt));
    }

    [Fact]
    public async Task Completed_at_is_set_when_the_last_recipient_becomes_final()
    {
        var message = Message("a@one.example", "b@two.example");
        await Spool.StoreAsync(message, Ct);
        var jobs = await Spool.ClaimDueAsync(T0, 10, Lease, Ct);

        var t1 = T0 + TimeSpan.FromSeconds(1);
        var t2 = T0 + TimeSpan.FromSeconds(2);
        await Spool.CompleteAttemptAsync(message.Id, jobs[0].LeaseId, [Delivered(jobs[0].Recipients[0].RecipientId, t1)], Ct);
        Assert.Null((await Spool.GetStatusAsync(message.Id, Ct))!.CompletedAt);

        await Spool.CompleteAttemptAsync(message.Id, jobs[1].LeaseId,
            [new RecipientUpdate { RecipientId = jobs[1].Recipients[0].RecipientId, State = RecipientState.Expired, AttemptedAt = t2 }], Ct);
        Assert.Equal(t2, (await Spool.GetStatusAsync(message.Id, Ct))!.CompletedAt);
    }

    [Fact]
    public async Task Completed_at_is_set_when_jobs_of_one_message_complete_concurrently()
    {
        var message = Message([.. Enumerable.Range(0, 8).Select(i => $"r@d{i}.example")]);
        await Spool.StoreAsync(message, Ct);
        var jobs = await Spool.ClaimDueAsync(T0, 100, Lease, Ct);
        Assert.Equal(8, jobs.Count);

        await Task.WhenAll(jobs.Select(job => Task.Run(() => Stores.OpenSpool().CompleteAttemptAsync(
            message.Id, job.LeaseId, [Delivered(job.Recipients[0].RecipientId, T0)], Ct))));

        Assert.Equal(T0, (await Spool.GetStatusAsync(message.Id, Ct))!.CompletedAt);
    }

    [Fact]
    public async Task A_message_whose_recipients_are_all_suppressed_is_complete_when_stored_and_never_due()
    {
        var message = Message("a@example.com") with
        {
            Recipients = [new NewRecipient { Address = "a@example.com", State = RecipientState.Suppressed }],
        };
        await Spool.StoreAsync(message, Ct);

        Assert.Empty(await Spool.ClaimDueAsync(T0 + TimeSpan.FromDays(1), 10, Lease, Ct));
        var status = await Spool.GetStatusAsync(message.Id, Ct);
        Assert.Equal(T0, status!.CompletedAt);
        Assert.Equal(RecipientState.Suppressed, Assert.Single(status.Recipients).State);
    }

    [Fact]
    public async Task Purge_deletes_only_messages_completed_before_the_cutoff()
    {
        var old = Message("a@example.com");
        var recent = Message("b@example.com");
        var pending = Message("c@example.com");
        foreach (var message in new[] { old, recent, pending })
        {
            await Spool.StoreAsync(message, Ct);
        }

        foreach (var job in await Spool.ClaimDueAsync(T0, 10, Lease, Ct))
        {
            var at = job.MessageId == old.Id ? T0 : T0 + TimeSpan.FromHours(1);
            if (job.MessageId != pending.Id)
            {
                await Spool.CompleteAttemptAsync(job.MessageId, job.LeaseId, [Delivered(job.Recipients[0].RecipientId, at)], Ct);
            }
        }

        Assert.Equal(1, await Spool.PurgeCompletedAsync(T0 + TimeSpan.FromMinutes(30), Ct));
        Assert.Null(await Spool.GetMessageAsync(old.Id, Ct));
        Assert.Null(await Spool.GetStatusAsync(old.Id, Ct));
        Assert.NotNull(await Spool.GetMessageAsync(recent.Id, Ct));
        Assert.NotNull(await Spool.GetMessageAsync(pending.Id, Ct));
        Assert.Equal(0, await Spool.PurgeCompletedAsync(T0 + TimeSpan.FromMinutes(30), Ct));
        Assert.Equal(1, await Spool.PurgeCompletedAsync(T0 + TimeSpan.FromDays(1), Ct));
        Assert.NotNull(await Spool.GetMessageAsync(pending.Id, Ct));

        // Recipients and their history go with their message.
        var counts = await Spool.CountByStateAsync(Ct);
        Assert.Equal(0, counts[RecipientState.Delivered]);
        Assert.Equal(1, counts.Values.Sum());
    }

    [Fact]
    public async Task Count_by_state_counts_every_state()
    {
        var empty = await Spool.CountByStateAsync(Ct);
        Assert.All(Enum.GetValues<RecipientState>(), state => Assert.Equal(0, empty[state]));

        var message = Message("a@one.example", "b@two.example", "c@three.example");
        await Spool.StoreAsync(message, Ct);
        var jobs = await Spool.ClaimDueAsync(T0, 2, Lease, Ct);
        await Spool.CompleteAttemptAsync(message.Id, jobs[0].LeaseId, [Delivered(jobs[0].Recipients[0].RecipientId, T0)], Ct);

        var counts = await Spool.CountByStateAsync(Ct);
        Assert.Equal(1, counts[RecipientState.Queued]);
        Assert.Equal(1, counts[RecipientState.InFlight]);
        Assert.Equal(1, counts[RecipientState.Delivered]);
        Assert.Equal(0, counts[RecipientState.Deferred]);
    }

    [Fact]
    public async Task Migrations_are_idempotent_and_keep_data()
    {
        var message = Message("a@example.com");
        await Spool.StoreAsync(message, Ct);

        await Stores.Migrator.MigrateAsync(Ct);
        await Stores.OpenMigrator().MigrateAsync(Ct);

        Assert.NotNull(await Spool.GetMessageAsync(message.Id, Ct));
    }

    [Fact]
    public async Task Arguments_are_checked()
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Spool.ClaimDueAsync(T0, 0, Lease, Ct));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Spool.ClaimDueAsync(T0, 1, TimeSpan.Zero, Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => Spool.CompleteAttemptAsync(Guid.NewGuid(), Guid.NewGuid(),
            [new RecipientUpdate { RecipientId = 1, State = RecipientState.InFlight, AttemptedAt = T0 }], Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => Spool.CompleteAttemptAsync(Guid.NewGuid(), Guid.NewGuid(),
            [Delivered(1, T0), Delivered(1, T0)], Ct));
        Assert.Empty(await Spool.CompleteAttemptAsync(Guid.NewGuid(), Guid.NewGuid(), [], Ct));
    }

    [Fact]
    public async Task Taking_a_lease_returns_the_message_once_per_owner_and_fails_after_it_was_re_issued()
    {
        var message = Message("a@example.com");
        await Spool.StoreAsync(message, Ct);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, Ct));
        var owner = Guid.NewGuid();

        var taken = await Spool.StartAttemptAsync(message.Id, job.LeaseId, owner, T0 + Lease, Ct);
        Assert.Equal(message.Content.ToArray(), taken!.Content.ToArray());

        // The same work item redelivered by the broker while its first consumer still runs: another owner, refused.
        Assert.Null(await Spool.StartAttemptAsync(message.Id, job.LeaseId, Guid.NewGuid(), T0 + Lease, Ct));

        // The owner itself may take it again (an idempotent retry of the same attempt).
        Assert.NotNull(await Spool.StartAttemptAsync(message.Id, job.LeaseId, owner, T0 + Lease, Ct));

        // A lease that is not (or no longer) the recipient's is never taken.
        Assert.Null(await Spool.StartAttemptAsync(message.Id, Guid.NewGuid(), Guid.NewGuid(), T0 + Lease, Ct));
        Assert.Null(await Spool.StartAttemptAsync(Guid.NewGuid(), job.LeaseId, owner, T0 + Lease, Ct));
    }

    /// <summary>
    /// Delivery takes and records many leases at once, and a redelivered work item races its first consumer for the
    /// same lease. PostgreSQL carries the takes (and the records) that arrive together in one statement: each still gets
    /// its own answer, and of two owners racing for one lease exactly one takes it.
    /// </summary>
    [Fact]
    public async Task Concurrent_takes_and_records_of_many_jobs_each_get_their_own_answer()
    {
        var messages = new Dictionary<Guid, NewMessage>();
        for (var i = 0; i < 24; i++)
        {
            var message = Message($"a{i}@one.example", $"b{i}@one.example", $"c{i}@two.example") with
            {
                Content = Encoding.ASCII.GetBytes($"Subject: {i}\r\n\r\nbody {i}\r\n"),
            };
            messages[message.Id] = message;
            await Spool.StoreAsync(message, Ct);
        }

        var jobs = await Spool.ClaimDueAsync(T0, 1000, Lease, Ct);
        Assert.Equal(48, jobs.Count);

        var owners = jobs.Select(_ => (First: Guid.NewGuid(), Second: Guid.NewGuid())).ToList();
        var takes = await Task.WhenAll(jobs.SelectMany((job, i) => new[]
        {
            Spool.StartAttemptAsync(job.MessageId, job.LeaseId, owners[i].First, T0 + Lease, Ct),
            Spool.StartAttemptAsync(job.MessageId, job.LeaseId, owners[i].Second, T0 + Lease, Ct),
        }));
        var winners = new Guid[jobs.Count];
        for (var i = 0; i < jobs.Count; i++)
        {
            var (first, second) = (takes[2 * i], takes[(2 * i) + 1]);
            Assert.True(first is null != second is null, $"job {i}: exactly one owner takes the lease");
            var taken = first ?? second!;
            Assert.Equal(jobs[i].MessageId, taken.Id);
            Assert.Equal(messages[jobs[i].MessageId].Content.ToArray(), taken.Content.ToArray());
            winners[i] = first is null ? owners[i].Second : owners[i].First;
        }

        // The winner may take it again (its answer was lost), the loser still may not.
        var again = await Task.WhenAll(jobs.Select((job, i) => Spool.StartAttemptAsync(job.MessageId, job.LeaseId, winners[i], T0 + Lease, Ct)));
        Assert.All(again, Assert.NotNull);
        var losers = await Task.WhenAll(jobs.Select((job, i) => Spool.StartAttemptAsync(
            job.MessageId, job.LeaseId, winners[i] == owners[i].First ? owners[i].Second : owners[i].First, T0 + Lease, Ct)));
        Assert.All(losers, Assert.Null);

        // Every job records its result, one twice, and a lease that is not the recipients' records nothing.
        var stale = Result(jobs[0], "stale") with { LeaseId = Guid.NewGuid() };
        var records = await Task.WhenAll(jobs
            .Select(job => Result(job, job.LeaseId.ToString()))
            .Append(Result(jobs[1], jobs[1].LeaseId.ToString()))
            .Append(stale)
            .Select(result => Spool.RecordResultAsync(result, T0, Ct)));
        Assert.All(records.SkipLast(1), Assert.True);
        Assert.False(records[^1]);

        var applied = await Spool.ClaimResultsAsync(T0 + TimeSpan.FromSeconds(1), 1000, TimeSpan.FromMinutes(1), Ct);
        Assert.Equal(jobs.Select(j => j.LeaseId).Order(), applied.Select(r => r.LeaseId).Order());
        Assert.All(applied, r => Assert.Equal(r.LeaseId.ToString(), r.Payload));
        Assert.All(applied, r => Assert.Equal(jobs.Single(j => j.LeaseId == r.LeaseId).MessageId, r.MessageId));
    }

    [Theory]
    [InlineData(16, false)]
    [InlineData(32 * 1024, false)] // SQLite binds the content up to here, and writes a larger one into a zeroblob
    [InlineData((32 * 1024) + 1, false)]
    [InlineData(StoredMessage.InlineContentLimit, false)]
    [InlineData(StoredMessage.InlineContentLimit + 1, true)]
    [InlineData(5 * 1024 * 1024, true)]
    public async Task Taking_a_lease_inlines_content_up_to_the_limit_and_a_larger_one_is_streamed_byte_exact(int size, bool detached)
    {
        // Issue 7: an attempt never holds a large body on the heap; it streams it from the store instead.
        var content = new byte[size];
        new Random(size).NextBytes(content);
        "Subject: s\r\n\r\n"u8.CopyTo(content);
        var message = Message("a@example.com") with { Content = content };
        await Spool.StoreAsync(message, Ct);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, Ct));

        var taken = await Spool.StartAttemptAsync(message.Id, job.LeaseId, Guid.NewGuid(), T0 + Lease, Ct);

        Assert.Equal(size, taken!.ContentLength);
        Assert.Equal(detached ? size : null, taken.DetachedContentLength);
        Assert.Equal(detached ? 0 : size, taken.Content.Length);

        // Inline content comes byte-exact in a buffer leased for the attempt (issue 8: no new array per attempt).
        Assert.Equal(!detached, taken.ContentLease is not null);
        if (!detached)
        {
            Assert.True(taken.Content.Span.SequenceEqual(content));
            taken.ContentLease!.Dispose();
            taken.ContentLease.Dispose();
        }

        using var copy = new MemoryStream();
        Assert.True(await Spool.CopyContentAsync(message.Id, copy, Ct));
        Assert.Equal(content, copy.ToArray());
        Assert.False(await Spool.CopyContentAsync(Guid.NewGuid(), new MemoryStream(), Ct));
    }

    [Fact]
    public async Task A_renewed_lease_is_not_claimed_again_and_a_re_issued_lease_cannot_be_renewed_or_taken()
    {
        var message = Message("a@example.com");
        await Spool.StoreAsync(message, Ct);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, Ct));
        var owner = Guid.NewGuid();
        Assert.NotNull(await Spool.StartAttemptAsync(message.Id, job.LeaseId, owner, T0 + Lease, Ct));

        // Renewed before it ran out: at the old expiry nothing is due.
        Assert.True(await Spool.RenewLeaseAsync(message.Id, job.LeaseId, owner, T0 + Lease + Lease, Ct));
        Assert.False(await Spool.RenewLeaseAsync(message.Id, job.LeaseId, Guid.NewGuid(), T0 + Lease + Lease, Ct));
        Assert.Empty(await Spool.ClaimDueAsync(T0 + Lease, 10, Lease, Ct));

        // The owner stopped renewing: once the renewed lease expires the scheduler re-issues it, and the old owner
        // can neither renew nor take it, nor record a result under it.
        var again = Assert.Single(await Spool.ClaimDueAsync(T0 + Lease + Lease, 10, Lease, Ct));
        Assert.NotEqual(job.LeaseId, again.LeaseId);
        Assert.False(await Spool.RenewLeaseAsync(message.Id, job.LeaseId, owner, T0 + (4 * Lease), Ct));
        Assert.Null(await Spool.StartAttemptAsync(message.Id, job.LeaseId, owner, T0 + (4 * Lease), Ct));
        Assert.False(await Spool.RecordResultAsync(Result(job, "late"), T0 + (2 * Lease), Ct));

        // The new lease starts without an owner.
        Assert.NotNull(await Spool.StartAttemptAsync(message.Id, again.LeaseId, Guid.NewGuid(), T0 + (3 * Lease), Ct));
    }

    [Fact]
    public async Task A_recorded_result_keeps_its_recipients_from_being_claimed_until_it_is_applied()
    {
        var message = Message("a@example.com", "b@example.com");
        await Spool.StoreAsync(message, Ct);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, Ct));

        Assert.True(await Spool.RecordResultAsync(Result(job, "first"), T0 + TimeSpan.FromSeconds(1), Ct));

        // Recording the same lease again is a no-op that still answers true (a retried write).
        Assert.True(await Spool.RecordResultAsync(Result(job, "second"), T0 + TimeSpan.FromSeconds(2), Ct));

        // Long after the lease would have expired: not claimed, not counted in the window, not taken by a late
        // redelivery, not released at a Standalone restart.
        Assert.Empty(await Spool.ClaimDueAsync(T0 + (10 * Lease), 10, Lease, Ct));
        Assert.Null(await Spool.StartAttemptAsync(message.Id, job.LeaseId, Guid.NewGuid(), T0 + (11 * Lease), Ct));
        Assert.Equal(0, await Spool.ReleaseLeasesAsync(T0 + (10 * Lease), Ct));

        var pending = Assert.Single(await Spool.ClaimResultsAsync(T0 + TimeSpan.FromSeconds(3), 10, TimeSpan.FromSeconds(30), Ct));
        Assert.Equal(job.LeaseId, pending.LeaseId);
        Assert.Equal(message.Id, pending.MessageId);
        Assert.Equal("first", pending.Payload);
        Assert.Equal(1, pending.Tries);

        // Handed out once: hidden from other appliers until its retry time, then handed out again with back-off.
        Assert.Empty(await Stores.OpenSpool().ClaimResultsAsync(T0 + TimeSpan.FromSeconds(4), 10, TimeSpan.FromSeconds(30), Ct));
        var retried = Assert.Single(await Spool.ClaimResultsAsync(T0 + TimeSpan.FromSeconds(33), 10, TimeSpan.FromSeconds(30), Ct));
        Assert.Equal(2, retried.Tries);
        Assert.Empty(await Spool.ClaimResultsAsync(T0 + TimeSpan.FromSeconds(33 + 59), 10, TimeSpan.FromSeconds(30), Ct));
        Assert.Single(await Spool.ClaimResultsAsync(T0 + TimeSpan.FromSeconds(33 + 60), 10, TimeSpan.FromSeconds(30), Ct));

        // Applying: the conditional completion still holds the lease (the result was recorded under it).
        var applied = await Spool.CompleteAttemptAsync(message.Id, job.LeaseId,
            [.. job.Recipients.Select(r => Delivered(r.RecipientId, T0 + TimeSpan.FromSeconds(1)))], Ct);
        Assert.Equal(2, applied.Count);
        await Spool.DeleteResultsAsync([job.LeaseId], Ct);
        Assert.Empty(await Spool.ClaimResultsAsync(T0 + (100 * Lease), 10, TimeSpan.FromSeconds(30), Ct));
        Assert.NotNull((await Spool.GetStatusAsync(message.Id, Ct))!.CompletedAt);

        // Too late for this lease now: nothing is recorded.
        Assert.False(await Spool.RecordResultAsync(Result(job, "after"), T0 + Lease, Ct));
        Assert.Empty(await Spool.ClaimResultsAsync(T0 + (100 * Lease), 10, TimeSpan.FromSeconds(30), Ct));
    }

    [Fact]
    public async Task A_result_for_only_some_recipients_leaves_the_others_to_expire_and_be_claimed_again()
    {
        var message = Message("a@example.com", "b@example.com");
        await Spool.StoreAsync(message, Ct);
        var job = Assert.Single(await Spool.ClaimDueAsync(T0, 10, Lease, Ct));

        Assert.True(await Spool.RecordResultAsync(Result(job, "partial") with { RecipientIds = [job.Recipients[0].RecipientId] }, T0, Ct));

        var again = Assert.Single(await Spool.ClaimDueAsync(T0 + Lease, 10, Lease, Ct));
        Assert.Equal(job.Recipients[1].RecipientId, Assert.Single(again.Recipients).RecipientId);
    }

    [Fact]
    public async Task Windowed_claims_keep_jobs_in_flight_within_the_total_and_per_domain_limits()
    {
        for (var i = 0; i < 4; i++)
        {
            await Spool.StoreAsync(Message($"a{i}@busy.example") with { ReceivedAt = T0 + TimeSpan.FromMilliseconds(i) }, Ct);
        }

        for (var i = 0; i < 3; i++)
        {
            await Spool.StoreAsync(Message($"b{i}@quiet.example") with { ReceivedAt = T0 + TimeSpan.FromMilliseconds(10 + i) }, Ct);
        }

        ClaimRequest Window(DateTimeOffset now) => new()
        {
            Now = now,
            MaxRecipients = 100,
            LeaseDuration = Lease,
            MaxJobsInFlight = 4,
            MaxJobsInFlightPerDomain = 2,
        };

        // busy.example is older, but only two of its jobs fit its window; quiet.example's fill the rest.
        var first = await Spool.ClaimDueAsync(Window(T0 + TimeSpan.FromSeconds(1)), Ct);
        Assert.Equal(4, first.Count);
        Assert.Equal(2, first.Count(j => j.Domain == "busy.example"));
        Assert.Equal(2, first.Count(j => j.Domain == "quiet.example"));

        // Full: nothing more until some work finishes.
        Assert.Empty(await Spool.ClaimDueAsync(Window(T0 + TimeSpan.FromSeconds(2)), Ct));

        // One busy job's result is recorded: it no longer counts, so one more busy job is admitted.
        var busy = first.First(j => j.Domain == "busy.example");
        Assert.True(await Spool.RecordResultAsync(Result(busy, "done"), T0 + TimeSpan.FromSeconds(3), Ct));
        var next = Assert.Single(await Spool.ClaimDueAsync(Window(T0 + TimeSpan.FromSeconds(4)), Ct));
        Assert.Equal("busy.example", next.Domain);

        // A single-recipient round (MaxRecipients 1) admits one job even when the window has more room.
        var completed = await Spool.CompleteAttemptAsync(busy.MessageId, busy.LeaseId, [Delivered(busy.Recipients[0].RecipientId, T0)], Ct);
        Assert.Single(completed);

        // When the leases expire unrenewed they stop counting and the work is claimed again, still inside the window.
        var later = await Spool.ClaimDueAsync(Window(T0 + TimeSpan.FromSeconds(5) + Lease), Ct);
        Assert.Equal(4, later.Count);
        Assert.True(later.Count(j => j.Domain == "busy.example") <= 2);
    }

    [Fact]
    public async Task A_backlog_behind_a_full_domain_window_does_not_hide_other_domains()
    {
        // Issue 8: a claim scans at most 4 × MaxRecipients due rows. Twelve older rows of a domain whose window is already
        // full must not fill that scan and starve the domain behind them (head-of-line blocking), and they are not
        // scanned or locked round after round.
        for (var i = 0; i < 12; i++)
        {
            await Spool.StoreAsync(Message($"a{i}@busy.example") with { ReceivedAt = T0 + TimeSpan.FromMilliseconds(i) }, Ct);
        }

        await Spool.StoreAsync(Message("b@quiet.example") with { ReceivedAt = T0 + TimeSpan.FromMilliseconds(100) }, Ct);

        ClaimRequest Window(DateTimeOffset now, int maxRecipients) => new()
        {
            Now = now,
            MaxRecipients = maxRecipients,
            LeaseDuration = Lease,
            MaxJobsInFlight = 100,
            MaxJobsInFlightPerDomain = 1,
        };

        var first = Assert.Single(await Spool.ClaimDueAsync(Window(T0 + TimeSpan.FromSeconds(1), 1), Ct));
        Assert.Equal("busy.example", first.Domain);

        // busy.example is full; its eleven older rows exceed the scan (4 × 2), yet quiet.example is found.
        var next = Assert.Single(await Spool.ClaimDueAsync(Window(T0 + TimeSpan.FromSeconds(2), 2), Ct));
        Assert.Equal("quiet.example", next.Domain);
    }

    [Fact]
    public async Task A_claim_without_a_window_is_unchanged_and_bad_windows_are_refused()
    {
        await Spool.StoreAsync(Message("a@example.com", "b@example.org"), Ct);
        Assert.Equal(2, (await Spool.ClaimDueAsync(new ClaimRequest { Now = T0, MaxRecipients = 10, LeaseDuration = Lease }, Ct)).Count);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            Spool.ClaimDueAsync(new ClaimRequest { Now = T0, MaxRecipients = 10, LeaseDuration = Lease, MaxJobsInFlight = 0 }, Ct));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            Spool.ClaimDueAsync(new ClaimRequest { Now = T0, MaxRecipients = 10, LeaseDuration = Lease, MaxJobsInFlightPerDomain = 0 }, Ct));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Spool.ClaimResultsAsync(T0, 0, TimeSpan.FromSeconds(1), Ct));
        await Spool.DeleteResultsAsync([], Ct);
    }

    [Fact]
    public async Task Concurrent_appliers_never_get_the_same_result()
    {
        var recorded = new List<Guid>();
        for (var i = 0; i < 20; i++)
        {
            var message = Message($"r{i}@example.com");
            await Spool.StoreAsync(message, Ct);
        }

        foreach (var job in await Spool.ClaimDueAsync(T0, 100, Lease, Ct))
        {
            Assert.True(await Spool.RecordResultAsync(Result(job, "x"), T0, Ct));
            recorded.Add(job.LeaseId);
        }

        var spools = Enumerable.Range(0, 4).Select(_ => Stores.OpenSpool()).ToList();
        var handedOut = new ConcurrentBag<Guid>();
        await Task.WhenAll(spools.Select(async spool =>
        {
            for (var round = 0; round < 5; round++)
            {
                foreach (var result in await spool.ClaimResultsAsync(T0, 3, TimeSpan.FromMinutes(1), Ct))
                {
                    handedOut.Add(result.LeaseId);
                }
            }
        }));

        Assert.Equal(recorded.Order(), handedOut.Order());
    }

    [Fact]
    public async Task A_gap_in_the_lease_clock_extends_the_leases_live_before_it_once_and_a_dead_lease_still_expires()
    {
        var gap = TimeSpan.FromMinutes(1);
        var minute = TimeSpan.FromMinutes(1);

        // The first heartbeat ever has nothing to make up for.
        Assert.Null(await Spool.BeatLeaseClockAsync(T0, gap, Ct));

        // "old" has a one-minute lease that runs out at T0+1m, as the outage begins; the others run until T0+5m30s.
        var old = Message("old@example.com");
        await Spool.StoreAsync(old, Ct);
        var oldJob = Assert.Single(await Spool.ClaimDueAsync(T0, 10, minute, Ct));
        var dead = Message("dead@example.org");
        var held = Message("held@example.net");
        var recorded = Message("recorded@example.info");
        foreach (var message in new[] { dead, held, recorded })
        {
            await Spool.StoreAsync(message, Ct);
        }

        var jobs = (await Spool.ClaimDueAsync(T0 + TimeSpan.FromSeconds(30), 10, Lease, Ct)).ToDictionary(j => j.MessageId);
        Assert.Equal(3, jobs.Count);
        Assert.Null(await Spool.BeatLeaseClockAsync(T0 + TimeSpan.FromSeconds(30), gap, Ct));
        Assert.True(await Spool.RecordResultAsync(Result(jobs[recorded.Id], "before"), T0 + TimeSpan.FromSeconds(40), Ct));
        Assert.Null(await Spool.BeatLeaseClockAsync(T0 + minute, gap, Ct));

        // No scheduler reaches the store for ten minutes (longer than the leases). The first heartbeat after it extends
        // the leases that were live at the last one (not "old", which ran out then, nor the recorded result) by the gap;
        // a second replica coming back a moment later finds the clock moved and extends nothing.
        var back = T0 + (11 * minute);
        var pause = await Spool.BeatLeaseClockAsync(back, gap, Ct);
        Assert.NotNull(pause);
        Assert.Equal(T0 + minute, pause.From);
        Assert.Equal(back, pause.To);
        Assert.Equal(10 * minute, pause.Length);
        Assert.Equal(2, pause.Extended);
        Assert.Null(await Stores.OpenSpool().BeatLeaseClockAsync(back + TimeSpan.FromSeconds(1), gap, Ct));

        // Only the lease that ran out before the outage is claimed again; the holders of the others can still renew and
        // record under their leases, although their nominal expiry has long passed.
        var again = Assert.Single(await Spool.ClaimDueAsync(back + TimeSpan.FromSeconds(1), 10, Lease, Ct));
        Assert.Equal(old.Id, again.MessageId);
        Assert.NotEqual(oldJob.LeaseId, again.LeaseId);
        Assert.True(await Spool.RecordResultAsync(Result(jobs[held.Id], "after"), back + TimeSpan.FromSeconds(2), Ct));

        // The holder of "dead" was killed during the outage: its lease, extended once, still runs out (at T0+15m30s).
        Assert.Empty(await Spool.ClaimDueAsync(T0 + (15 * minute) + TimeSpan.FromSeconds(29), 10, Lease, Ct));
        var redriven = Assert.Single(await Spool.ClaimDueAsync(T0 + (15 * minute) + TimeSpan.FromSeconds(31), 10, Lease, Ct));
        Assert.Equal(dead.Id, redriven.MessageId);
        Assert.NotEqual(jobs[dead.Id].LeaseId, redriven.LeaseId);

        // Heartbeats within the gap change nothing; a bad gap is refused.
        Assert.Null(await Spool.BeatLeaseClockAsync(back + TimeSpan.FromSeconds(30), gap, Ct));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Spool.BeatLeaseClockAsync(back, TimeSpan.Zero, Ct));
    }

    protected static PendingResult Result(DeliveryJob job, string payload) => new()
    {
        LeaseId = job.LeaseId,
        MessageId = job.MessageId,
        RecipientIds = [.. job.Recipients.Select(r => r.RecipientId)],
        Payload = payload,
    };

    protected static RecipientUpdate Delivered(long recipientId, DateTimeOffset at) => new()
    {
        RecipientId = recipientId,
        State = RecipientState.Delivered,
        AttemptedAt = at,
        ReplyCode = 250,
        EnhancedCode = "2.0.0",
        ReplyText = "ok",
        RemoteHost = "mx.example.com",
    };
}

public sealed class PostgresSpoolTests : SpoolContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await PostgresStores.CreateAsync();

    /// <summary>
    /// A claim reads past the work it can take (a domain near its window, other domains behind it) but writes only the
    /// rows it takes. It used to lock every candidate (FOR UPDATE): under a backlog of one destination with room for a
    /// few jobs, each round wrote a row lock, and a WAL record, into up to 4 × ClaimBatchSize rows to take a handful,
    /// round after round, which kept a distributed run that fell behind from catching up (issue 8).
    /// </summary>
    [Fact]
    public async Task A_windowed_claim_writes_nothing_into_the_rows_it_does_not_take()
    {
        for (var i = 0; i < 10; i++)
        {
            await Spool.StoreAsync(Message($"r{i}@busy.example") with { ReceivedAt = T0 + TimeSpan.FromMilliseconds(i) }, CancellationToken.None);
        }

        var request = new ClaimRequest
        {
            Now = T0 + TimeSpan.FromSeconds(1),
            MaxRecipients = 100,
            LeaseDuration = Lease,
            MaxJobsInFlight = 100,
            MaxJobsInFlightPerDomain = 2,
        };
        var claimed = (await Spool.ClaimDueAsync(request, CancellationToken.None)).SelectMany(j => j.Recipients).Select(r => r.RecipientId).ToHashSet();
        Assert.Equal(2, claimed.Count);

        // xmax is the last transaction that updated, deleted or locked a row version: a row lock leaves it set.
        await using var connection = new Npgsql.NpgsqlConnection(((PostgresStores)Stores).ConnectionString);
        await connection.OpenAsync(CancellationToken.None);
        await using var command = new Npgsql.NpgsqlCommand("SELECT id, xmax::text::bigint FROM spool.recipients", connection);
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
        var untouched = 0;
        while (await reader.ReadAsync(CancellationToken.None))
        {
            if (!claimed.Contains(reader.GetInt64(0)))
            {
                Assert.Equal(0L, reader.GetInt64(1));
                untouched++;
            }
        }

        Assert.Equal(8, untouched);
    }

    /// <summary>
    /// Lease takes and result records were a statement and a commit each, two WAL flushes per mail that the accept
    /// path's commit queued behind (issue 8). Those that arrive while one is at the server now share the next statement:
    /// here the first take waits on a row lock, and the twenty after it go in one statement once it is released (result
    /// records go through the same coalescer).
    /// </summary>
    [Fact]
    public async Task Takes_and_records_that_arrive_while_one_is_at_the_server_share_the_next_statement()
    {
        for (var i = 0; i < 21; i++)
        {
            await Spool.StoreAsync(Message($"r{i}@example.com"), CancellationToken.None);
        }

        var jobs = await Spool.ClaimDueAsync(T0, 100, Lease, CancellationToken.None);
        Assert.Equal(21, jobs.Count);
        var spool = (Postgres.PostgresSpool)Spool;
        var before = spool.CoalescedStatements;

        await using var connection = new Npgsql.NpgsqlConnection(((PostgresStores)Stores).ConnectionString);
        await connection.OpenAsync(CancellationToken.None);
        await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None);
        await using (var lockFirst = new Npgsql.NpgsqlCommand("SELECT 1 FROM spool.recipients WHERE lease_id = @lease FOR UPDATE", connection, transaction))
        {
            lockFirst.Parameters.AddWithValue("lease", jobs[0].LeaseId);
            await lockFirst.ExecuteNonQueryAsync(CancellationToken.None);
        }

        var first = Spool.StartAttemptAsync(jobs[0].MessageId, jobs[0].LeaseId, Guid.NewGuid(), T0 + Lease, CancellationToken.None);
        await Eventually.WaitUntilAsync(
            async () => await WaitingOnLocksAsync(connection, transaction) == 1, TimeSpan.FromSeconds(30), "the first take waits on the row lock");
        var rest = jobs.Skip(1).Select(j => Spool.StartAttemptAsync(j.MessageId, j.LeaseId, Guid.NewGuid(), T0 + Lease, CancellationToken.None)).ToList();
        await transaction.CommitAsync(CancellationToken.None);

        Assert.NotNull(await first);
        Assert.All(await Task.WhenAll(rest), Assert.NotNull);
        Assert.Equal(before.Takes + 2, spool.CoalescedStatements.Takes);
    }

    /// <summary>
    /// The accept path's group commit: messages in memory that arrive while two stores are at the server go together in
    /// the next transaction. Here the first two wait on rows another transaction is inserting with their ids, and the
    /// twenty after them share one statement; a message in a file still goes alone.
    /// </summary>
    [Fact]
    public async Task Stores_that_arrive_while_two_are_at_the_server_share_the_next_transaction()
    {
        var spool = (Postgres.PostgresSpool)Spool;
        var before = spool.CoalescedStatements;
        var blocked = new[] { Message("a@example.com"), Message("b@example.com") };

        await using var connection = new Npgsql.NpgsqlConnection(((PostgresStores)Stores).ConnectionString);
        await connection.OpenAsync(CancellationToken.None);
        await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None);
        foreach (var message in blocked)
        {
            await using var insert = new Npgsql.NpgsqlCommand(
                "INSERT INTO spool.messages (id, sender, content, size, received_at, origin, body_type, smtputf8, requiretls) " +
                "VALUES (@id, '', '', 0, now(), 0, 0, false, false)", connection, transaction);
            insert.Parameters.AddWithValue("id", message.Id);
            await insert.ExecuteNonQueryAsync(CancellationToken.None);
        }

        var first = new List<Task<bool>>();
        foreach (var message in blocked)
        {
            first.Add(Spool.StoreAsync(message, CancellationToken.None));
            await Eventually.WaitUntilAsync(
                async () => await WaitingOnLocksAsync(connection, transaction) == first.Count, TimeSpan.FromSeconds(30), "the store waits on the insert");
        }
        var rest = Enumerable.Range(0, 20).Select(i => Message($"r{i}@example.com")).ToList();
        var stores = rest.Select(m => Spool.StoreAsync(m, CancellationToken.None)).ToList();
        await transaction.RollbackAsync(CancellationToken.None);

        Assert.All(await Task.WhenAll(first), Assert.True);
        Assert.All(await Task.WhenAll(stores), Assert.True);
        Assert.Equal(before.Stores + 3, spool.CoalescedStatements.Stores);
        foreach (var message in blocked.Concat(rest))
        {
            Assert.Equal(message.Content.ToArray(), (await Spool.GetMessageAsync(message.Id, CancellationToken.None))!.Content.ToArray());
        }

        var path = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(path, "Subject: file\r\n\r\nbody\r\n"u8.ToArray());
            var inFile = Message("f@example.com") with
            {
                Content = ReadOnlyMemory<byte>.Empty,
                ContentSource = new MessageContentSource(new FileInfo(path).Length, () => File.OpenRead(path)),
            };
            Assert.True(await Spool.StoreAsync(inFile, CancellationToken.None));
            Assert.Equal(before.Stores + 3, spool.CoalescedStatements.Stores);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A message the store refuses (a recipient without a domain) fails alone, not the stores that arrive with it.</summary>
    [Fact]
    public async Task A_refused_message_fails_alone_among_stores_that_arrive_with_it()
    {
        var good = Enumerable.Range(0, 10).Select(i => Message($"r{i}@example.com")).ToList();
        var bad = Message("no-domain");
        var stores = good.Select(m => Spool.StoreAsync(m, CancellationToken.None)).Append(Spool.StoreAsync(bad, CancellationToken.None)).ToList();

        await Assert.ThrowsAsync<ArgumentException>(() => stores[^1]);
        Assert.All(await Task.WhenAll(stores.SkipLast(1)), Assert.True);
        Assert.Null(await Spool.GetMessageAsync(bad.Id, CancellationToken.None));
    }

    private static async Task<long> WaitingOnLocksAsync(Npgsql.NpgsqlConnection connection, Npgsql.NpgsqlTransaction transaction)
    {
        await using var command = new Npgsql.NpgsqlCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", connection, transaction);
        return (long)(await command.ExecuteScalarAsync(CancellationToken.None))!;
    }

    /// <summary>
    /// Completing a message reads that message's recipients, whatever else waits in the spool. The completion used to
    /// test "no recipient still pending" with <c>state IN (0, 1, 2)</c> in its WHERE, and with statistics taken while the
    /// spool was quiet the planner ANDed in a bitmap of the whole recipients_pending index for every message completed:
    /// in a paced distributed run, 25,000 index entries per message and more executor time than the claims (issue 8).
    /// </summary>
    [Fact]
    public async Task Completing_messages_reads_their_own_recipients_not_the_backlog()
    {
        await using var connection = new Npgsql.NpgsqlConnection(((PostgresStores)Stores).ConnectionString);
        await connection.OpenAsync(CancellationToken.None);

        // Statistics of a quiet spool (everything delivered), then a backlog of 20,000 recipients nobody has analyzed.
        await using (var fill = new Npgsql.NpgsqlCommand(
            """
            INSERT INTO spool.messages (id, sender, content, size, received_at, origin, body_type, smtputf8, requiretls)
            SELECT gen_random_uuid(), 'a@example.com', '\x00', 1, now(), 0, 0, false, false FROM generate_series(1, 2000);
            INSERT INTO spool.recipients (message_id, address, domain, state, next_attempt_at, received_at, updated_at)
            SELECT id, 'b@example.net', 'example.net', 3, now(), now(), now() FROM spool.messages;
            ANALYZE spool.messages;
            ANALYZE spool.recipients;
            CREATE TEMP TABLE backlog AS
                SELECT gen_random_uuid() AS id, now() + g * interval '1 ms' AS at FROM generate_series(1, 20000) AS g;
            INSERT INTO spool.messages (id, sender, content, size, received_at, origin, body_type, smtputf8, requiretls)
            SELECT id, 'a@example.com', '\x00', 1, at, 0, 0, false, false FROM backlog;
            INSERT INTO spool.recipients (message_id, address, domain, state, next_attempt_at, received_at, updated_at)
            SELECT id, 'c@example.org', 'example.org', 0, at, at, at FROM backlog;
            """, connection))
        {
            await fill.ExecuteNonQueryAsync(CancellationToken.None);
        }

        var done = new List<Guid>();
        await using (var pick = new Npgsql.NpgsqlCommand("SELECT id FROM spool.messages WHERE completed_at IS NULL AND sender = 'a@example.com' AND id NOT IN (SELECT id FROM backlog) LIMIT 20", connection))
        await using (var reader = await pick.ExecuteReaderAsync(CancellationToken.None))
        {
            while (await reader.ReadAsync(CancellationToken.None))
            {
                done.Add(reader.GetGuid(0));
            }
        }

        Assert.Equal(20, done.Count);
        await using var explain = new Npgsql.NpgsqlCommand("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + MailMesh.Storage.Postgres.PostgresSpool.CompleteMessagesSql, connection);
        explain.Parameters.Add(new Npgsql.NpgsqlParameter<Guid[]>("message_ids", [.. done]));
        explain.Parameters.Add(new Npgsql.NpgsqlParameter<DateTimeOffset[]>("completed_at", [.. done.Select(_ => T0)]));
        using var plan = System.Text.Json.JsonDocument.Parse((string)(await explain.ExecuteScalarAsync(CancellationToken.None))!);
        var root = plan.RootElement[0].GetProperty("Plan");
        var blocks = root.GetProperty("Shared Hit Blocks").GetInt64() + root.GetProperty("Shared Read Blocks").GetInt64();

        // About twenty pages per message (its row, the indexes its new version goes into, its recipients); the old
        // statement also read the backlog's pending index for each message (786 pages in all here).
        Assert.True(blocks < 20 * 30, $"completing 20 messages read {blocks} pages:\n{plan.RootElement}");
        await using var count = new Npgsql.NpgsqlCommand("SELECT count(*) FROM spool.messages WHERE completed_at IS NOT NULL", connection);
        Assert.Equal(20L, await count.ExecuteScalarAsync(CancellationToken.None));
    }

    [Theory]
    [InlineData("")]
    [InlineData("Received: from client\r\nSubject: rewritten\r\n")]
    public async Task A_body_in_a_file_goes_to_PostgreSQL_as_a_memory_map_never_as_a_stream(string prefix)
    {
        // Npgsql copies a Stream parameter into a growing MemoryStream (about 128 MiB of heap for 35 MB), which ran the
        // distributed Ingress out of memory under the chart's limit with 50 large messages at once (issue 7 §3).
        var bytes = new byte[(3 * 1024 * 1024) + 5];
        new Random(5).NextBytes(bytes);
        var path = Path.Combine(Path.GetTempPath(), "mailmesh-tests-" + Guid.NewGuid().ToString("N"));
        await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 4096, FileOptions.DeleteOnClose);
        await file.WriteAsync(new byte[100]); // the content starts at an offset, as a body after a rewritten header does
        await file.WriteAsync(bytes);
        await file.FlushAsync();
        var maps = 0;
        var head = System.Text.Encoding.ASCII.GetBytes(prefix);
        var source = new MessageContentSource(head.Length + bytes.Length, () => throw new InvalidOperationException("the stream must not be opened"))
        {
            MappedPrefix = head, // e.g. the Received header and a rewritten header section before a spilled HTTP body
            Map = () =>
            {
                maps++;
                return new MailMesh.Storage.Content.MappedContent(file, 100, bytes.Length);
            },
        };

        var message = Message("a@example.com") with { Content = ReadOnlyMemory<byte>.Empty, ContentSource = source };

        Assert.True(await Spool.StoreAsync(message, CancellationToken.None));

        Assert.Equal(1, maps);
        var stored = await Spool.GetMessageAsync(message.Id, CancellationToken.None);
        Assert.True(head.Concat(bytes).ToArray().AsSpan().SequenceEqual(stored!.Content.Span));
        Assert.Equal(head.Length + bytes.Length, (await Spool.GetStatusAsync(message.Id, CancellationToken.None))!.Size);
    }
}

public sealed class SqliteSpoolTests : SpoolContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await SqliteStores.CreateAsync();
}
