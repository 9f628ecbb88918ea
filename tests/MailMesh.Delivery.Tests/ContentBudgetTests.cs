using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Delivery.Tests;

public sealed class ContentBudgetTests
{
    private const long MiB = 1024 * 1024;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Room_is_given_while_it_lasts_waits_for_a_release_and_times_out_when_none_comes()
    {
        var time = new FakeTimeProvider();
        using var budget = new ContentBudget(4 * MiB);

        var first = await budget.TryAcquireAsync(3 * MiB, Wait, time, CancellationToken.None);
        Assert.NotNull(first);
        Assert.Equal(1, budget.Available);

        // 2 MiB does not fit until the first is released.
        var second = budget.TryAcquireAsync((2 * MiB) - 1, Wait, time, CancellationToken.None);
        Assert.False(second.IsCompleted);
        first.Dispose();
        first.Dispose(); // twice is once
        using (var granted = await second)
        {
            Assert.NotNull(granted);
            Assert.Equal(2, budget.Available);

            // Nothing is released within the wait: no room, and nothing held afterwards.
            var third = budget.TryAcquireAsync(3 * MiB, Wait, time, CancellationToken.None);
            time.Advance(Wait);
            Assert.Null(await third);
            Assert.Equal(2, budget.Available);
        }

        Assert.Equal(4, budget.Available);
    }

    [Fact]
    public async Task A_copy_larger_than_the_whole_budget_gets_all_of_it_and_runs_alone()
    {
        var time = new FakeTimeProvider();
        using var budget = new ContentBudget(4 * MiB);
        var small = await budget.TryAcquireAsync(1, Wait, time, CancellationToken.None);

        var huge = budget.TryAcquireAsync(35 * MiB, Wait, time, CancellationToken.None);
        Assert.False(huge.IsCompleted);
        small!.Dispose();
        using var granted = await huge;

        Assert.NotNull(granted);
        Assert.Equal(0, budget.Available);
    }
}
