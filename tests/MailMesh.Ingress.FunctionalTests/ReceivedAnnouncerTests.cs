using System.Collections.Concurrent;
using System.Diagnostics;
using MailMesh.Contracts;
using MailMesh.Ingress.Acceptance;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>
/// Issue 8: committed messages are announced to Queue many to one bus message. One announcement is in flight at a time;
/// what is committed meanwhile goes out together in the next, and nothing waits for the broker before it is queued. With
/// an announce interval, at most one starts per interval.
/// </summary>
public sealed class ReceivedAnnouncerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Messages_committed_while_an_announcement_is_in_flight_go_out_together_in_the_next()
    {
        var broker = new GatedBroker();
        await using var announcer = new ReceivedAnnouncer(broker.PublishAsync, Timeout, TimeProvider.System, NullLogger<ReceivedAnnouncer>.Instance);

        // A quiet server: the first message is announced alone and at once.
        var first = Received();
        announcer.Announce(first);
        var inFlight = await broker.NextAsync();
        Assert.Equal([first.MessageId], inFlight.Messages.Select(m => m.MessageId));

        // Five more while the broker has not confirmed it: Announce returns at once, and they wait for the next.
        var later = Enumerable.Range(0, 5).Select(_ => Received()).ToList();
        later.ForEach(announcer.Announce);
        Assert.Single(broker.Published);

        broker.Release();
        var next = await broker.NextAsync();
        Assert.Equal(later.Select(m => m.MessageId), next.Messages.Select(m => m.MessageId));
        broker.Release();
        Assert.Equal(2, broker.Published.Count);
    }

    [Fact]
    public async Task At_most_one_announcement_starts_per_interval_and_the_first_after_a_quiet_one_goes_at_once()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var interval = TimeSpan.FromMilliseconds(20);
        var broker = new GatedBroker();
        broker.Release(3);
        await using var announcer = new ReceivedAnnouncer(broker.PublishAsync, Timeout, time, NullLogger<ReceivedAnnouncer>.Instance, interval);

        // The first message goes at once, on a clock that does not move.
        var first = Received();
        announcer.Announce(first);
        var announced = await broker.NextAsync();
        Assert.Equal([first.MessageId], announced.Messages.Select(m => m.MessageId));

        // The broker has confirmed it, but the next three wait for the interval to end, then go together. Before the fix
        // (no interval) each went out as soon as the broker confirmed the one before: 147 a second at 377 mails a second.
        var later = Enumerable.Range(0, 3).Select(_ => Received()).ToList();
        later.ForEach(announcer.Announce);
        await Task.Delay(TimeSpan.FromMilliseconds(200));
        Assert.Single(broker.Published);
        announced = await AdvanceUntilAnnouncedAsync(time, interval, broker);
        Assert.Equal(later.Select(m => m.MessageId), announced.Messages.Select(m => m.MessageId));

        // After a quiet interval the next message goes at once again.
        time.Advance(TimeSpan.FromSeconds(1));
        var quiet = Received();
        announcer.Announce(quiet);
        announced = await broker.NextAsync();
        Assert.Equal([quiet.MessageId], announced.Messages.Select(m => m.MessageId));
    }

    [Fact]
    public async Task Neither_the_drain_on_disposal_nor_a_full_batch_waits_for_the_interval_to_end()
    {
        // A clock that never moves: a wait for the interval would never end.
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var broker = new GatedBroker();
        broker.Release(10);
        var announcer = new ReceivedAnnouncer(broker.PublishAsync, Timeout, time, NullLogger<ReceivedAnnouncer>.Instance, TimeSpan.FromSeconds(1));
        announcer.Announce(Received());
        await broker.NextAsync();

        // A full batch goes without waiting.
        var full = Enumerable.Range(0, ReceivedAnnouncer.MaxBatch).Select(_ => Received()).ToList();
        full.ForEach(announcer.Announce);
        var announced = await broker.NextAsync();
        Assert.Equal(full.Select(m => m.MessageId), announced.Messages.Select(m => m.MessageId));

        // The loop now waits for the interval; disposal announces what is queued at once.
        var last = Received();
        announcer.Announce(last);
        await Task.Delay(TimeSpan.FromMilliseconds(100));
        await announcer.DisposeAsync().AsTask().WaitAsync(Timeout);
        Assert.Equal([last.MessageId], broker.Published.Last().Messages.Select(m => m.MessageId));
    }

    /// <summary>Moves the clock an interval at a time until the next announcement starts: the loop may not have started
    /// its wait when the clock first moves.</summary>
    private static async Task<MessagesReceived> AdvanceUntilAnnouncedAsync(FakeTimeProvider time, TimeSpan interval, GatedBroker broker)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            time.Advance(interval);
            await Task.Delay(TimeSpan.FromMilliseconds(10));
            if (broker.Started.Reader.TryRead(out var announced))
            {
                return announced;
            }

            Assert.True(DateTime.UtcNow < deadline, "nothing was announced");
        }
    }

    [Fact]
    public async Task A_failed_announcement_is_logged_and_the_next_messages_are_still_announced()
    {
        var broker = new GatedBroker { FailNext = true };
        broker.Release(2);
        await using var announcer = new ReceivedAnnouncer(broker.PublishAsync, Timeout, TimeProvider.System, NullLogger<ReceivedAnnouncer>.Instance);

        announcer.Announce(Received());
        await broker.NextAsync();
        var second = Received();
        announcer.Announce(second);

        var next = await broker.NextAsync();
        Assert.Equal([second.MessageId], next.Messages.Select(m => m.MessageId));
    }

    [Fact]
    public async Task Disposal_announces_what_is_still_queued()
    {
        var broker = new GatedBroker();
        var announcer = new ReceivedAnnouncer(broker.PublishAsync, Timeout, TimeProvider.System, NullLogger<ReceivedAnnouncer>.Instance);
        announcer.Announce(Received());
        await broker.NextAsync();
        var queued = Received();
        announcer.Announce(queued);

        broker.Release(2);
        await announcer.DisposeAsync();

        Assert.Equal(2, broker.Published.Count);
        Assert.Equal([queued.MessageId], broker.Published.Last().Messages.Select(m => m.MessageId));
    }

    [Fact]
    public async Task Each_announcement_is_a_span_of_its_own_linked_to_the_transactions_it_announces()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == IngressTelemetry.SourceName || source.Name == "test",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        using var source = new ActivitySource("test");
        var broker = new GatedBroker();
        broker.Release(2);

        // Made and first used inside a transaction's span, as the first SMTP session of a process does.
        ReceivedAnnouncer announcer;
        ActivityContext first, second;
        using (var transaction = source.StartActivity("smtp.transaction"))
        {
            first = transaction!.Context;
            announcer = new ReceivedAnnouncer(broker.PublishAsync, Timeout, TimeProvider.System, NullLogger<ReceivedAnnouncer>.Instance);
            announcer.Announce(Received());
            await broker.NextAsync();
        }

        using (var transaction = source.StartActivity("smtp.transaction"))
        {
            second = transaction!.Context;
            announcer.Announce(Received());
            await broker.NextAsync();
        }

        await announcer.DisposeAsync();
        // The listener hears the whole process: other tests' announcers (running in parallel) make announce spans too,
        // linked to their own transactions' traces. Ours are the ones linked into this test's two traces.
        var ours = new[] { first.TraceId, second.TraceId };
        var announces = spans
            .Where(s => s.OperationName == "ingress.announce" && s.Links.Any(l => ours.Contains(l.Context.TraceId)))
            .ToList();
        Assert.Equal(2, announces.Count);
        Assert.All(announces, a => Assert.Equal(default, a.ParentSpanId));
        Assert.Equal([first.SpanId], announces[0].Links.Select(l => l.Context.SpanId));
        Assert.Equal([second.SpanId], announces[1].Links.Select(l => l.Context.SpanId));
    }

    private static MessageReceived Received() => new()
    {
        MessageId = Guid.CreateVersion7(),
        Sender = "sender@example.test",
        RecipientCount = 1,
        Size = 100,
        ReceivedAt = DateTimeOffset.UtcNow,
    };

    /// <summary>A broker whose confirms the test releases one by one.</summary>
    private sealed class GatedBroker
    {
        private readonly SemaphoreSlim _confirms = new(0);

        public System.Threading.Channels.Channel<MessagesReceived> Started { get; } = System.Threading.Channels.Channel.CreateUnbounded<MessagesReceived>();

        public ConcurrentQueue<MessagesReceived> Published { get; } = new();

        public bool FailNext { get; set; }

        public void Release(int count = 1) => _confirms.Release(count);

        /// <summary>The next announcement the announcer started to publish (waits up to the test's timeout).</summary>
        public Task<MessagesReceived> NextAsync() => Started.Reader.ReadAsync().AsTask().WaitAsync(Timeout);

        public async Task PublishAsync(MessagesReceived batch, CancellationToken cancellationToken)
        {
            Published.Enqueue(batch);
            Started.Writer.TryWrite(batch);
            await _confirms.WaitAsync(cancellationToken);
            if (FailNext)
            {
                FailNext = false;
                throw new InvalidOperationException("the broker refused it");
            }
        }
    }
}
