using MailMesh.Storage;
using MailMesh.Testing.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Delivery.Tests;

/// <summary>
/// The lease an attempt keeps renewed. Not run beside other tests: one counts the exceptions the process throws, and
/// another test's leases would count too.
/// </summary>
[Collection(nameof(AttemptLeaseTests))]
[CollectionDefinition(nameof(AttemptLeaseTests), DisableParallelization = true)]
public sealed class AttemptLeaseTests
{
    [Fact]
    public async Task An_attempt_that_ends_stops_its_renewals_without_an_exception()
    {
        // Every attempt ends while its renewal loop waits; that wait threw a TaskCanceledException per mail (745 a second
        // at 740 mails a second in the load tool's run, issue 8).
        var thrown = 0;
        void Count(object? sender, System.Runtime.ExceptionServices.FirstChanceExceptionEventArgs e)
        {
            // At first chance the trace holds only the frame that threw (the awaiter), so every cancellation counts:
            // nothing else runs beside this test.
            if (e.Exception is OperationCanceledException)
            {
                Interlocked.Increment(ref thrown);
            }
        }

        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-05T10:00:00Z"));
        AppDomain.CurrentDomain.FirstChanceException += Count;
        try
        {
            for (var i = 0; i < 20; i++)
            {
                var lease = AttemptLease.Start(new InMemorySpool(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), TimeSpan.FromMinutes(5),
                    time.GetUtcNow() + TimeSpan.FromMinutes(5), new DeliveryOptions(), time, NullLogger.Instance);
                await lease.DisposeAsync();
                Assert.False(lease.IsLost);
            }
        }
        finally
        {
            AppDomain.CurrentDomain.FirstChanceException -= Count;
        }

        Assert.Equal(0, thrown);
    }

    [Fact]
    public async Task A_lease_is_renewed_a_third_of_its_duration_after_it_was_taken_and_a_refused_renewal_marks_it_reissued()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-05T10:00:00Z"));
        var spool = new InMemorySpool();
        // No such lease in the spool: the renewal is refused, as for a lease Queue re-issued to another attempt.
        await using var lease = AttemptLease.Start(spool, Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), TimeSpan.FromMinutes(3),
            time.GetUtcNow() + TimeSpan.FromMinutes(3), new DeliveryOptions(), time, NullLogger.Instance);

        time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(0, Volatile.Read(ref spool.Renewals));
        Assert.False(lease.IsReissued);
        time.Advance(TimeSpan.FromSeconds(1));
        await Eventually.WaitUntilAsync(() => Task.FromResult(lease.IsReissued), TimeSpan.FromSeconds(10), "the refused renewal did not mark the lease re-issued");
        Assert.Equal(1, Volatile.Read(ref spool.Renewals));
        Assert.True(lease.Token.IsCancellationRequested);
    }
}
