using MailMesh.ServiceDefaults;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// The coalescing of MX lookups (Delivery's MxCache, the Dns service's MxResolver). Under a burst, Delivery's thread pool
/// starved: the first caller ran MassTransit's request (which connects its response pipe with a blocking wait) inside a
/// Lazy's lock, and every other delivery for the domain blocked a pool thread on that lock (issue 8).
/// </summary>
public sealed class SingleFlightTests
{
    [Fact]
    public async Task No_caller_waits_on_a_thread_while_the_work_blocks_its_own()
    {
        var flight = new SingleFlight<string, int>(StringComparer.Ordinal);
        using var release = new ManualResetEventSlim();
        var started = 0;
        Task<int> Work(string key)
        {
            Interlocked.Increment(ref started);
            // Set only after every caller below got its task back: work run on a caller's thread never sees it.
            return release.Wait(TimeSpan.FromSeconds(10)) ? Task.FromResult(42) : throw new TimeoutException("the work ran on a caller's thread");
        }

        var calls = Enumerable.Range(0, 8).Select(_ => flight.RunAsync("example.org", Work)).ToList();
        release.Set();

        Assert.All(await Task.WhenAll(calls), answer => Assert.Equal(42, answer));
        Assert.Equal(1, started);
    }

    [Fact]
    public async Task A_finished_key_starts_afresh_and_a_failure_reaches_every_caller()
    {
        var flight = new SingleFlight<string, int>(StringComparer.Ordinal);
        var gate = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = flight.RunAsync("a", _ => gate.Task);
        var second = flight.RunAsync("a", _ => Task.FromResult(1));
        Assert.Same(first, second);

        gate.SetException(new InvalidOperationException("lookup failed"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => first);
        await Assert.ThrowsAsync<InvalidOperationException>(() => second);

        // The failed work is gone: the next caller runs its own.
        for (var i = 0; i < 100 && flight.Count > 0; i++)
        {
            await Task.Yield();
        }

        Assert.Equal(0, flight.Count);
        Assert.Equal(7, await flight.RunAsync("a", _ => Task.FromResult(7)));
    }

    [Fact]
    public async Task Different_keys_run_apart()
    {
        var flight = new SingleFlight<string, string>(StringComparer.Ordinal);
        var gate = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var slow = flight.RunAsync("slow.example", _ => gate.Task);
        Assert.Equal("fast.example", await flight.RunAsync("fast.example", key => Task.FromResult(key)));
        Assert.False(slow.IsCompleted);
        gate.SetResult("slow.example");
        Assert.Equal("slow.example", await slow);
    }
}
