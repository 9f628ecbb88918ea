using System.Collections.Concurrent;
using System.Diagnostics;
using MailMesh.Storage.Postgres;
using Npgsql;

namespace MailMesh.Storage.IntegrationTests;

/// <summary>
/// <see cref="StatementCoalescer{TRequest, TKey, TResult}"/> without a server: the statements it runs are a function
/// that the test holds open (a gate) until the next requests have queued.
/// </summary>
public sealed class StatementCoalescerTests
{
    private static readonly AsyncLocal<string?> CallerScope = new();

    private readonly List<int[]> _statements = [];
    private readonly ConcurrentBag<(Activity? Activity, string? Scope)> _seen = [];
    private int _cancelled;
    private TaskCompletionSource _gate = NewGate();

    private static TaskCompletionSource NewGate() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Answers each request with its value times ten; a request of -1 makes the server refuse the statement.</summary>
    private StatementCoalescer<int, int, int> Coalescer(Func<int, int>? keyOf = null, int maxBatch = 100, int maxStatements = 1) => new(
        async (requests, cancellationToken) =>
        {
            lock (_statements)
            {
                _statements.Add([.. requests]);
            }

            _seen.Add((Activity.Current, CallerScope.Value));
            try
            {
                await _gate.Task.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _cancelled);
                throw;
            }

            if (requests.Contains(-1))
            {
                throw new PostgresException("refused", "ERROR", "ERROR", "22023");
            }

            if (requests.Contains(-2))
            {
                throw new NpgsqlException("the connection broke");
            }

            return [.. requests.Select(r => r * 10)];
        },
        keyOf ?? (r => r),
        maxBatch,
        maxStatements);

    private async Task WaitForStatementsAsync(int count)
    {
        for (var i = 0; i < 3000 && Statements() < count; i++)
        {
            await Task.Delay(10);
        }

        Assert.Equal(count, Statements());
    }

    private int Statements()
    {
        lock (_statements)
        {
            return _statements.Count;
        }
    }

    [Fact]
    public async Task Requests_that_arrive_while_a_statement_runs_share_the_next_one()
    {
        var coalescer = Coalescer();
        var first = coalescer.RunAsync(1, CancellationToken.None);
        await WaitForStatementsAsync(1);
        var rest = Enumerable.Range(2, 9).Select(i => coalescer.RunAsync(i, CancellationToken.None)).ToList();
        _gate.SetResult();

        Assert.Equal(10, await first);
        Assert.Equal(Enumerable.Range(2, 9).Select(i => i * 10), await Task.WhenAll(rest));
        Assert.Equal([[1], [2, 3, 4, 5, 6, 7, 8, 9, 10]], _statements);
    }

    [Fact]
    public async Task With_two_statements_at_once_the_second_request_goes_at_once_and_the_rest_share_the_third()
    {
        var coalescer = Coalescer(maxStatements: 2);
        var first = coalescer.RunAsync(1, CancellationToken.None);
        await WaitForStatementsAsync(1);
        var second = coalescer.RunAsync(2, CancellationToken.None);
        await WaitForStatementsAsync(2);
        var rest = Enumerable.Range(3, 5).Select(i => coalescer.RunAsync(i, CancellationToken.None)).ToList();
        _gate.SetResult();

        Assert.Equal(10, await first);
        Assert.Equal(20, await second);
        var answers = await Task.WhenAll(rest);
        Assert.Equal([30, 40, 50, 60, 70], answers);
        Assert.Equal([[1], [2], [3, 4, 5, 6, 7]], _statements);
    }

    [Fact]
    public async Task Requests_with_the_same_key_never_share_a_statement_and_a_batch_stops_at_its_limit()
    {
        var coalescer = Coalescer(keyOf: r => r % 3, maxBatch: 2);
        var first = coalescer.RunAsync(0, CancellationToken.None);
        await WaitForStatementsAsync(1);
        int[] queued = [3, 6, 1, 4, 2];
        var rest = queued.Select(i => coalescer.RunAsync(i, CancellationToken.None)).ToList();
        _gate.SetResult();

        await first;
        var answers = await Task.WhenAll(rest);
        Assert.Equal([30, 60, 10, 40, 20], answers);
        Assert.Equal([[0], [3, 1], [6, 4], [2]], _statements);
    }

    [Fact]
    public async Task A_request_the_server_refuses_fails_alone_and_a_broken_connection_fails_its_whole_statement()
    {
        var coalescer = Coalescer();
        var first = coalescer.RunAsync(1, CancellationToken.None);
        await WaitForStatementsAsync(1);
        var good = coalescer.RunAsync(2, CancellationToken.None);
        var refused = coalescer.RunAsync(-1, CancellationToken.None);
        var alsoGood = coalescer.RunAsync(3, CancellationToken.None);
        _gate.SetResult();

        await first;
        Assert.Equal(20, await good);
        Assert.Equal(30, await alsoGood);
        await Assert.ThrowsAsync<PostgresException>(() => refused);
        Assert.Equal([[1], [2, -1, 3], [2], [-1], [3]], _statements);

        _gate = NewGate();
        var blocked = coalescer.RunAsync(4, CancellationToken.None);
        await WaitForStatementsAsync(6);
        var broken = coalescer.RunAsync(-2, CancellationToken.None);
        var sharing = coalescer.RunAsync(5, CancellationToken.None);
        _gate.SetResult();

        Assert.Equal(40, await blocked);
        await Assert.ThrowsAsync<NpgsqlException>(() => broken);
        await Assert.ThrowsAsync<NpgsqlException>(() => sharing);
        Assert.Equal(7, Statements());

        // The coalescer goes on after failures.
        Assert.Equal(60, await coalescer.RunAsync(6, CancellationToken.None));
    }

    [Fact]
    public async Task A_request_whose_caller_gave_up_before_its_statement_is_dropped()
    {
        var coalescer = Coalescer();
        var first = coalescer.RunAsync(1, CancellationToken.None);
        await WaitForStatementsAsync(1);
        using var giveUp = new CancellationTokenSource();
        var abandoned = coalescer.RunAsync(2, giveUp.Token);
        var kept = coalescer.RunAsync(3, CancellationToken.None);
        await giveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        _gate.SetResult();

        await first;
        Assert.Equal(30, await kept);
        Assert.Equal([[1], [3]], _statements);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => coalescer.RunAsync(4, giveUp.Token));
    }

    [Fact]
    public async Task A_statement_is_cancelled_once_every_caller_in_it_gave_up_and_a_caller_in_one_hears_its_answer()
    {
        var coalescer = Coalescer();
        using var first = new CancellationTokenSource();
        var alone = coalescer.RunAsync(1, first.Token);
        await WaitForStatementsAsync(1);
        await first.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => alone);
        for (var i = 0; i < 3000 && Volatile.Read(ref _cancelled) == 0; i++)
        {
            await Task.Delay(10);
        }

        Assert.Equal(1, Volatile.Read(ref _cancelled));

        using var second = new CancellationTokenSource();
        var blocker = coalescer.RunAsync(2, CancellationToken.None);
        await WaitForStatementsAsync(2);
        var givesUp = coalescer.RunAsync(3, second.Token);
        var stays = coalescer.RunAsync(4, CancellationToken.None);
        var released = _gate;
        _gate = NewGate();
        released.SetResult();
        await blocker;
        await WaitForStatementsAsync(3);
        await second.CancelAsync();
        await Task.Delay(50);
        Assert.False(givesUp.IsCompleted, "a caller whose request is in a statement waits for its answer");
        _gate.SetResult();

        Assert.Equal(30, await givesUp);
        Assert.Equal(40, await stays);
        Assert.Equal(1, Volatile.Read(ref _cancelled));
        Assert.Equal([[1], [2], [3, 4]], _statements);
    }

    [Fact]
    public async Task A_statement_runs_under_the_first_callers_trace_activity_but_not_in_its_execution_context()
    {
        var coalescer = Coalescer();
        _gate.SetResult();
        using var activity = new Activity("caller").Start();
        CallerScope.Value = "caller's scope";

        Assert.Equal(10, await coalescer.RunAsync(1, CancellationToken.None));

        var (seenActivity, seenScope) = Assert.Single(_seen);
        Assert.Same(activity, seenActivity);
        Assert.Null(seenScope);
    }
}
