using System.Diagnostics;
using System.Runtime.CompilerServices;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// Group commit in the client: the requests of one kind that arrive while <paramref name="maxStatements"/> statements
/// of that kind are at the server wait, and go together in the next one, one round trip and one commit (one WAL flush)
/// for all of them. A request that finds a statement's place free goes at once. The batches grow with the load. A
/// "statement" here is whatever <c>run</c> sends in one round trip: PostgresSpool sends an <see cref="NpgsqlBatch"/> of
/// one command per request, which the server runs as one implicit transaction.
/// </summary>
/// <remarks>
/// <para>
/// Delivery's lease takes and result records were two commits per mail, each waiting for its own WAL flush, and the
/// accept path's commit queued behind them (issue 8, session 22: <c>LWLock:WALWrite</c> was most of what the active
/// backends waited on). Durability is unchanged: a caller's task completes only after the statement that carried its
/// request committed.
/// </para>
/// <para>
/// A caller that gives up while its request waits is let go at once. Once the request is in a statement, the caller
/// waits for that statement's answer whatever its token says: the statement may commit the request. The statement is
/// cancelled at the server once every caller in it gave up (so a lone request's timeout still cancels its statement, as
/// before), and is otherwise bounded by the connection's command timeout.
/// It runs outside its callers' execution context (their logging scopes), as a child of the first request's trace
/// activity: the other requests' traces do not show the statement they shared.
/// </para>
/// <para>
/// Requests with the same <paramref name="keyOf"/> never share a statement (two takes of one lease by different owners
/// would each update some of its rows); the later one waits for the next. With one statement at a time (the default)
/// they never meet at the server either. A request whose caller gave up before its
/// statement started is dropped. When the server refuses a statement of several requests (a <see cref="PostgresException"/>:
/// one bad request, a serialisation failure), each request is tried alone, so one cannot fail the others; any other
/// failure (the connection) fails every request of the statement, as it would have failed each of them alone.
/// </para>
/// </remarks>
internal sealed class StatementCoalescer<TRequest, TKey, TResult>(
    Func<IReadOnlyList<TRequest>, CancellationToken, Task<IReadOnlyList<TResult>>> run,
    Func<TRequest, TKey> keyOf,
    int maxBatch,
    int maxStatements = 1)
    where TKey : notnull
{
    private readonly Lock _gate = new();
    private readonly List<Waiting> _waiting = [];
    private int _draining;

    /// <summary>How many statements ran (tests read it).</summary>
    internal int Statements;

    public Task<TResult> RunAsync(TRequest request, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<TResult>(cancellationToken);
        }

        var waiting = new Waiting(request, Activity.Current, cancellationToken);
        bool start;
        lock (_gate)
        {
            _waiting.Add(waiting);
            start = _draining < maxStatements;
            if (start)
            {
                _draining++;
            }
        }

        if (start)
        {
            // Not in this caller's execution context: the drain outlives the request that started it.
            using (ExecutionContext.SuppressFlow())
            {
                _ = Task.Run(DrainAsync, CancellationToken.None);
            }
        }

        // A caller that gives up is let go only while its request still waits: once in a statement, the request may
        // commit, and the caller must hear that (a 250 for a stored message), and its memory (the message's content,
        // a pooled buffer that Npgsql writes as the statement goes out) must stay its own until the statement is done.
        waiting.Withdrawal = cancellationToken.UnsafeRegister(
            static state =>
            {
                var (coalescer, waiting) = ((StatementCoalescer<TRequest, TKey, TResult>, Waiting))state!;
                coalescer.Withdraw(waiting);
            },
            (this, waiting));
        return AnswerAsync(waiting);
    }

    private static async Task<TResult> AnswerAsync(Waiting waiting)
    {
        try
        {
            return await waiting.Completion.Task;
        }
        finally
        {
            await waiting.Withdrawal.DisposeAsync();
        }
    }

    /// <summary>Lets a caller go if its request is not in a statement yet (still in the queue: Next takes it out).</summary>
    private void Withdraw(Waiting waiting)
    {
        lock (_gate)
        {
            if (!_waiting.Remove(waiting))
            {
                return;
            }
        }

        waiting.Completion.TrySetCanceled(waiting.Token);
    }

    private async Task DrainAsync()
    {
        List<Waiting>? batch = null;
        try
        {
            while ((batch = Next()) is not null)
            {
                await RunAsync(batch);
            }
        }
        catch (Exception ex)
        {
            // Not reached by a statement's failure (RunAsync answers those); whatever it is, no caller waits forever.
            lock (_gate)
            {
                _draining--;
                batch ??= [];
                batch.AddRange(_waiting);
                _waiting.Clear();
            }

            foreach (var waiting in batch)
            {
                waiting.Completion.TrySetException(ex);
            }
        }
    }

    /// <summary>The next statement's requests, or null (and this drainer gone) when none wait.</summary>
    private List<Waiting>? Next()
    {
        lock (_gate)
        {
            if (_waiting.Count == 0)
            {
                _draining--;
                return null;
            }

            var batch = new List<Waiting>(Math.Min(_waiting.Count, maxBatch));
            var keys = new HashSet<TKey>();
            var kept = 0;
            for (var i = 0; i < _waiting.Count; i++)
            {
                var waiting = _waiting[i];
                if (batch.Count < maxBatch && keys.Add(keyOf(waiting.Request)))
                {
                    batch.Add(waiting);
                }
                else
                {
                    _waiting[kept++] = waiting;
                }
            }

            _waiting.RemoveRange(kept, _waiting.Count - kept);
            return batch;
        }
    }

    private async Task RunAsync(List<Waiting> batch)
    {
        try
        {
            Answer(batch, await RunStatementAsync(batch));
        }
        catch (PostgresException) when (batch.Count > 1)
        {
            foreach (var waiting in batch)
            {
                try
                {
                    Answer([waiting], await RunStatementAsync([waiting]));
                }
                catch (Exception ex)
                {
                    waiting.Completion.TrySetException(ex);
                }
            }
        }
        catch (Exception ex)
        {
            foreach (var waiting in batch)
            {
                waiting.Completion.TrySetException(ex);
            }
        }
    }

    private async Task<IReadOnlyList<TResult>> RunStatementAsync(List<Waiting> batch)
    {
        Interlocked.Increment(ref Statements);
        using var abandoned = new CancellationTokenSource();
        var state = (new StrongBox<int>(batch.Count), abandoned);
        var registrations = batch.ConvertAll(w => w.Token.UnsafeRegister(
            static state =>
            {
                var (count, source) = ((StrongBox<int>, CancellationTokenSource))state!;
                if (Interlocked.Decrement(ref count.Value) == 0)
                {
                    source.Cancel();
                }
            },
            state));
        var previous = Activity.Current;
        Activity.Current = batch[0].Activity;
        try
        {
            return await run(batch.ConvertAll(w => w.Request), abandoned.Token);
        }
        finally
        {
            Activity.Current = previous;
            foreach (var registration in registrations)
            {
                await registration.DisposeAsync();
            }
        }
    }

    private static void Answer(List<Waiting> batch, IReadOnlyList<TResult> results)
    {
        if (results.Count != batch.Count)
        {
            throw new InvalidOperationException($"A statement of {batch.Count} requests answered {results.Count}.");
        }

        for (var i = 0; i < batch.Count; i++)
        {
            batch[i].Completion.TrySetResult(results[i]);
        }
    }

    private sealed class Waiting(TRequest request, Activity? activity, CancellationToken token)
    {
        public TRequest Request { get; } = request;

        public CancellationToken Token { get; } = token;

        /// <summary>The caller's trace activity when it asked.</summary>
        public Activity? Activity { get; } = activity;

        public CancellationTokenRegistration Withdrawal { get; set; }

        public TaskCompletionSource<TResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
