using System.Collections.Concurrent;
using MailMesh.Contracts;
using MailMesh.Ingress.Acceptance;
using Microsoft.Extensions.Logging.Abstractions;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>
/// Issue 8: committed messages are announced to Queue many to one bus message. One announcement is in flight at a time;
/// what is committed meanwhile goes out together in the next, and nothing waits for the broker before it is queued.
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
        var inFlight = await broker.Started.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.Equal([first.MessageId], inFlight.Messages.Select(m => m.MessageId));

        // Five more while the broker has not confirmed it: Announce returns at once, and they wait for the next.
        var later = Enumerable.Range(0, 5).Select(_ => Received()).ToList();
        later.ForEach(announcer.Announce);
        Assert.Single(broker.Published);

        broker.Release();
        var next = await broker.Started.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.Equal(later.Select(m => m.MessageId), next.Messages.Select(m => m.MessageId));
        broker.Release();
        Assert.Equal(2, broker.Published.Count);
    }

    [Fact]
    public async Task A_failed_announcement_is_logged_and_the_next_messages_are_still_announced()
    {
        var broker = new GatedBroker { FailNext = true };
        broker.Release(2);
        await using var announcer = new ReceivedAnnouncer(broker.PublishAsync, Timeout, TimeProvider.System, NullLogger<ReceivedAnnouncer>.Instance);

        announcer.Announce(Received());
        await broker.Started.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        var second = Received();
        announcer.Announce(second);

        var next = await broker.Started.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.Equal([second.MessageId], next.Messages.Select(m => m.MessageId));
    }

    [Fact]
    public async Task Disposal_announces_what_is_still_queued()
    {
        var broker = new GatedBroker();
        var announcer = new ReceivedAnnouncer(broker.PublishAsync, Timeout, TimeProvider.System, NullLogger<ReceivedAnnouncer>.Instance);
        announcer.Announce(Received());
        await broker.Started.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        var queued = Received();
        announcer.Announce(queued);

        broker.Release(2);
        await announcer.DisposeAsync();

        Assert.Equal(2, broker.Published.Count);
        Assert.Equal([queued.MessageId], broker.Published.Last().Messages.Select(m => m.MessageId));
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
