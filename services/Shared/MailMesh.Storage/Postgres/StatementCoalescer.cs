using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// Group commit in the client: the requests of one kind that arrive while a statement of that kind is at the server
/// wait, and go together in the next one, one round trip and one commit (one WAL flush) for all of them. A request
/// alone goes at once. At most one statement of each kind is at the server, so the batches grow with the load.
/// </summary>
/// <remarks>
/// <para>
/// Delivery's lease takes and result records were two commits per mail, each waiting for its own WAL flush, and the
/// accept path's commit queued behind them (issue 8, session 22: <c>LWLock:WALWrite</c> was most of what the active
/// backends waited on). Durability is unchanged: a caller's task completes only after the statement that carried its
/// request committed.
/// </para>
/// <para>
/// Requests with the same <paramref name="keyOf"/> never share a statement (two takes of one lease by different owners
/// would each update some of its rows); the later one waits for the next. A request whose caller gave up before its
/// statement started is dropped. When the server refuses a statement of several requests (a <see cref="PostgresException"/>:
/// one bad request, a serialisation failure), each request is tried alone, so one cannot fail the others; any other
/// failure (the connection) fails every request of the statement, as it would have failed each of them alone.
/// </para>
/// </remarks>
internal sealed class StatementCoalescer<TRequest, TKey, TResult>(
    Func<IReadOnlyList<TRequest>, Task<IReadOnlyList<TResult>>> run,
    Func<TRequest, TKey> keyOf,
    int maxBatch)
    where TKey : notnull
{
    private readonly Lock _gate = new();
    private readonly List<Waiting> _waiting = [];
    private bool _draining;

    /// <summary>How many statements ran (tests read it).</summary>
    internal int Statements;

    public Task<TResult> RunAsync(TRequest request, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var waiting = new Waiting(request, cancellationToken);
        bool start;
        lock (_gate)
        {
            _waiting.Add(waiting);
            start = !_draining;
            _draining = true;
        }

        if (start)
        {
            // Runs on this thread up to its first await (the statement's write), then wherever the answer arrives.
            _ = DrainAsync();
        }

        return waiting.Completion.Task.WaitAsync(cancellationToken);
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
                _draining = false;
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

    /// <summary>The next statement's requests, or null (and no longer draining) when none wait.</summary>
    private List<Waiting>? Next()
    {
        lock (_gate)
        {
            _waiting.RemoveAll(static w => w.Token.IsCancellationRequested && w.Completion.TrySetCanceled(w.Token));
            if (_waiting.Count == 0)
            {
                _draining = false;
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

    private Task<IReadOnlyList<TResult>> RunStatementAsync(List<Waiting> batch)
    {
        Interlocked.Increment(ref Statements);
        return run(batch.ConvertAll(w => w.Request));
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

    private sealed class Waiting(TRequest request, CancellationToken token)
    {
        public TRequest Request { get; } = request;

        public CancellationToken Token { get; } = token;

        public TaskCompletionSource<TResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
