using System.Diagnostics;
using System.Threading.Channels;
using MailMesh.Contracts;
using MassTransit;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress.Acceptance;

/// <summary>
/// Tells Queue about committed messages (<see cref="MessagesReceived"/>), many to one bus message (issue 8): one
/// announcement is on its way to the broker at a time, at most one starts per <see cref="IngressOptions.AnnounceInterval"/>,
/// and the messages committed meanwhile form the next. A quiet server announces each message alone and at once; under
/// load an announcement carries what the interval (or the broker's confirm time, if longer) gathered, and the broker
/// carries a share of a message per mail instead of one.
/// </summary>
/// <remarks>
/// The announcement is a hint, as before: the spool holds the message, Queue's poll finds it within
/// <c>Queue:PollInterval</c> without it, so a failed or dropped announcement is logged, never turned into a refusal, and
/// the SMTP session never waits for the broker (it did, for the confirm of its message's publish, before the next
/// command). What is queued here is bounded (<see cref="MaxQueued"/>); past that, announcements are dropped.
/// </remarks>
internal sealed class ReceivedAnnouncer : IAsyncDisposable
{
    /// <summary>Messages in one announcement at most.</summary>
    public const int MaxBatch = 512;

    /// <summary>Announcements waiting for the broker at most (about 150 bytes each); more are dropped.</summary>
    public const int MaxQueued = 65_536;

    /// <summary>How long disposal waits for the last announcements to go out.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(2);

    private readonly Channel<(MessageReceived Message, ActivityContext Accepted)> _queue =
        Channel.CreateBounded<(MessageReceived, ActivityContext)>(new BoundedChannelOptions(MaxQueued)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.DropWrite,
        });

    private readonly Func<MessagesReceived, CancellationToken, Task> _publish;
    private readonly TimeSpan _timeout;
    private readonly TimeSpan _interval;
    private readonly TimeProvider _time;
    private readonly ILogger<ReceivedAnnouncer> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private volatile bool _draining;
    private TaskCompletionSource? _hurry;
    private readonly Task _loop;

    /// <remarks>The bus is looked up at the first announcement: a host built without one (a tool that only lists the
    /// HTTP routes) can still resolve the acceptance path.</remarks>
    public ReceivedAnnouncer(IServiceProvider services, IOptions<IngressOptions> options, TimeProvider time, ILogger<ReceivedAnnouncer> logger)
        : this((batch, token) => services.GetRequiredService<IBus>().Publish(batch, token), options.Value.SpoolTimeout, time, logger, options.Value.AnnounceInterval)
    {
    }

    /// <summary>For tests: <paramref name="publish"/> stands for the bus.</summary>
    internal ReceivedAnnouncer(
        Func<MessagesReceived, CancellationToken, Task> publish, TimeSpan timeout, TimeProvider time, ILogger<ReceivedAnnouncer> logger, TimeSpan interval = default)
    {
        _publish = publish;
        _timeout = timeout;
        _interval = interval;
        _time = time;
        _logger = logger;

        // Without the creator's execution context: the first resolution happens inside an SMTP session, whose span
        // (Activity.Current) would otherwise be the parent of every announcement this process ever makes.
        using (ExecutionContext.SuppressFlow())
        {
            _loop = Task.Run(RunAsync);
        }
    }

    /// <summary>Queues the announcement of a committed message; returns at once.</summary>
    public void Announce(MessageReceived message)
    {
        if (!_queue.Writer.TryWrite((message, Activity.Current?.Context ?? default)))
        {
            Log.AnnouncementDropped(_logger, message.MessageId);
        }
        else if (_queue.Reader.Count >= MaxBatch)
        {
            // A full batch does not wait for the interval to end.
            Volatile.Read(ref _hurry)?.TrySetResult();
        }
    }

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<(MessageReceived Message, ActivityContext Accepted)>(MaxBatch);
        var lastStart = long.MinValue;
        try
        {
            while (await reader.WaitToReadAsync(_stopping.Token))
            {
                // At most one announcement per interval: each costs the broker about a millisecond of CPU whatever it
                // carries (a quorum queue's log write, delivery and settlement), and without a pause they went out as
                // fast as the broker confirmed them, 147 a second for 377 mails a second (issue 8). The first message
                // after a quiet interval goes at once; a full batch, or a drain on disposal, does not wait.
                var wait = lastStart == long.MinValue ? TimeSpan.Zero : _interval - _time.GetElapsedTime(lastStart);
                if (wait > TimeSpan.Zero)
                {
                    await WaitAsync(wait);
                }

                lastStart = _time.GetTimestamp();
                while (batch.Count < MaxBatch && reader.TryRead(out var next))
                {
                    batch.Add(next);
                }

                try
                {
                    await PublishAsync(batch);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !_stopping.IsCancellationRequested)
                {
                    // Whatever else broke (a listener, a logger): the loop must outlive it, or nothing is announced again.
                    Log.AnnouncementFailed(_logger, batch.Count, batch[0].Message.MessageId, ex);
                }

                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // Disposed and the drain timed out: what is left is found by Queue's poll.
        }
    }

    /// <summary>
    /// Waits out the rest of the interval, unless a batch fills up or disposal asks for the drain meanwhile: either one
    /// completes the wait's <see cref="_hurry"/>, which is published before the checks, so neither can slip between them.
    /// </summary>
    private async Task WaitAsync(TimeSpan wait)
    {
        var hurry = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Exchange(ref _hurry, hurry);
        if (_draining || _queue.Reader.Count >= MaxBatch)
        {
            return;
        }

        using var delayed = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        await Task.WhenAny(Task.Delay(wait, _time, delayed.Token), hurry.Task);
        await delayed.CancelAsync();
        _stopping.Token.ThrowIfCancellationRequested();
    }

    private async Task PublishAsync(List<(MessageReceived Message, ActivityContext Accepted)> batch)
    {
        // A span of its own, linked to the transactions it announces (each in its own trace).
        var links = batch.Where(b => b.Accepted != default).Select(b => new ActivityLink(b.Accepted)).ToList();
        using var activity = IngressTelemetry.Source.StartActivity("ingress.announce", ActivityKind.Producer, parentContext: default, links: links);
        activity?.SetTag("mailmesh.messages", batch.Count);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(_timeout);
            await _publish(new MessagesReceived { Messages = [.. batch.Select(b => b.Message)] }, timeout.Token);
        }
        catch (Exception ex) when (!_stopping.IsCancellationRequested || ex is not OperationCanceledException)
        {
            activity?.SetStatus(ActivityStatusCode.Error);
            Log.AnnouncementFailed(_logger, batch.Count, batch[0].Message.MessageId, ex);
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Announce what is queued (the bus may be gone already: then it is logged and left to Queue's poll).
        _draining = true;
        Interlocked.MemoryBarrier();
        Volatile.Read(ref _hurry)?.TrySetResult();
        _queue.Writer.TryComplete();
        try
        {
            await _loop.WaitAsync(DrainTimeout, _time);
        }
        catch (TimeoutException)
        {
            await _stopping.CancelAsync();
            try
            {
                // A publish that does not honour its token (a blocked broker connection) must not hold up the host.
                await _loop.WaitAsync(DrainTimeout, _time);
            }
            catch (TimeoutException)
            {
            }
        }

        _stopping.Dispose();
    }
}
