namespace MailMesh.Storage.IntegrationTests;

/// <summary>
/// Traffic shaping's store (migration 0014): site actions and rule hits in both stores; over PostgreSQL the budgets every
/// Delivery replica shares (connection leases, token buckets).
/// </summary>
public abstract class ShapingStoreContractTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 0, TimeSpan.Zero);

    protected Stores Stores { get; private set; } = null!;

    protected abstract Task<Stores> CreateStoresAsync();

    public async Task InitializeAsync() => Stores = await CreateStoresAsync();

    public async Task DisposeAsync() => await Stores.DisposeAsync();

    [Fact]
    public async Task Site_actions_are_stored_listed_while_live_and_removed()
    {
        var store = Stores.SiteActions;
        var suspend = new SiteAction
        {
            Id = Guid.NewGuid(),
            Site = "google",
            SourceIp = "192.0.2.1",
            Kind = SiteActionKind.Suspend,
            CreatedAt = T0,
            Until = T0 + TimeSpan.FromMinutes(30),
            Reason = "421 4.7.28 unusual rate",
            CreatedBy = "rule:gmail-rate-limited",
        };
        var lower = new SiteAction
        {
            Id = Guid.NewGuid(),
            Site = "yahoo",
            Kind = SiteActionKind.Limit,
            MaxConnections = 2,
            MessagesPerSecond = 0.5,
            CreatedAt = T0 + TimeSpan.FromSeconds(1),
            Until = T0 + TimeSpan.FromMinutes(10),
            Reason = "slow down",
            CreatedBy = "admin:ops",
        };
        await store.AddAsync(suspend, CancellationToken.None);
        await store.AddAsync(lower, CancellationToken.None);
        await store.AddAsync(suspend with { Reason = "again" }, CancellationToken.None); // same id: kept as it was

        Assert.Equal([suspend, lower], await store.ListLiveAsync(T0, CancellationToken.None));
        Assert.Equal([suspend], await store.ListLiveAsync(T0 + TimeSpan.FromMinutes(15), CancellationToken.None));
        Assert.True(await store.RemoveAsync(suspend.Id, CancellationToken.None));
        Assert.False(await store.RemoveAsync(suspend.Id, CancellationToken.None));
        Assert.Equal([lower], await store.ListLiveAsync(T0, CancellationToken.None));
    }

    [Fact]
    public async Task Rule_hits_count_per_key_in_fixed_windows()
    {
        var store = Stores.SiteActions;
        var hour = TimeSpan.FromHours(1);
        Assert.Equal(1, await store.CountHitAsync("r|google|default", T0, hour, CancellationToken.None));
        Assert.Equal(2, await store.CountHitAsync("r|google|default", T0 + TimeSpan.FromMinutes(1), hour, CancellationToken.None));
        Assert.Equal(1, await store.CountHitAsync("r|yahoo|default", T0, hour, CancellationToken.None));
        Assert.Equal(1, await store.CountHitAsync("r|google|default", T0 + hour, hour, CancellationToken.None));
    }
}

public sealed class SqliteShapingStoreTests : ShapingStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await SqliteStores.CreateAsync();
}

public sealed class PostgresShapingStoreTests : ShapingStoreContractTests
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 0, TimeSpan.Zero);

    protected override async Task<Stores> CreateStoresAsync() => await PostgresStores.CreateAsync();

    private IShapingBudgetStore Budget => (IShapingBudgetStore)Stores.SiteActions;

    [Fact]
    public async Task Connection_leases_never_exceed_the_limit_under_concurrent_takers_and_expire_when_not_renewed()
    {
        var expires = T0 + TimeSpan.FromMinutes(1);
        var holders = Enumerable.Range(0, 40).Select(_ => Guid.NewGuid()).ToList();

        // Forty takers at once, from separate connections: exactly five get a slot (a taker that lost a race retries).
        var taken = await Task.WhenAll(holders.Select(async holder =>
        {
            for (var i = 0; i < 20; i++)
            {
                if (await Budget.TryTakeConnectionAsync("conn|google|default", 5, holder, T0, expires, CancellationToken.None))
                {
                    return holder;
                }
            }

            return Guid.Empty;
        }));
        var winners = taken.Where(h => h != Guid.Empty).ToList();
        Assert.Equal(5, winners.Count);

        // A released slot is free again; another key has its own.
        await Budget.ReleaseConnectionAsync("conn|google|default", winners[0], CancellationToken.None);
        Assert.True(await Budget.TryTakeConnectionAsync("conn|google|default", 5, Guid.NewGuid(), T0, expires, CancellationToken.None));
        Assert.False(await Budget.TryTakeConnectionAsync("conn|google|default", 5, Guid.NewGuid(), T0, expires, CancellationToken.None));
        Assert.True(await Budget.TryTakeConnectionAsync("conn|yahoo|default", 5, Guid.NewGuid(), T0, expires, CancellationToken.None));

        // Renewed leases outlive the others; a replica that died (no renewal) gives its slots back at expiry.
        await Budget.RenewConnectionsAsync([winners[1], winners[2]], T0 + TimeSpan.FromMinutes(5), CancellationToken.None);
        var later = T0 + TimeSpan.FromMinutes(2);
        Assert.True(await Budget.TryTakeConnectionAsync("conn|google|default", 5, Guid.NewGuid(), later, later + TimeSpan.FromMinutes(1), CancellationToken.None));
        Assert.True(await Budget.TryTakeConnectionAsync("conn|google|default", 5, Guid.NewGuid(), later, later + TimeSpan.FromMinutes(1), CancellationToken.None));
        Assert.True(await Budget.TryTakeConnectionAsync("conn|google|default", 5, Guid.NewGuid(), later, later + TimeSpan.FromMinutes(1), CancellationToken.None));
        Assert.False(await Budget.TryTakeConnectionAsync("conn|google|default", 5, Guid.NewGuid(), later, later + TimeSpan.FromMinutes(1), CancellationToken.None));

        // A lowered limit lets nobody in while more than it are held.
        Assert.False(await Budget.TryTakeConnectionAsync("conn|google|default", 2, Guid.NewGuid(), later, later + TimeSpan.FromMinutes(1), CancellationToken.None));
    }

    [Fact]
    public async Task The_shared_token_bucket_gives_its_burst_then_reserves_tokens_one_interval_apart_up_to_the_longest_wait()
    {
        var maxWait = TimeSpan.FromSeconds(1);
        Assert.Equal(TimeSpan.Zero, await Budget.TryTakeTokenAsync("msg|x", 2, 2, maxWait, T0, CancellationToken.None));
        Assert.Equal(TimeSpan.Zero, await Budget.TryTakeTokenAsync("msg|x", 2, 2, maxWait, T0, CancellationToken.None));
        Assert.Equal(TimeSpan.FromSeconds(0.5), await Budget.TryTakeTokenAsync("msg|x", 2, 2, maxWait, T0, CancellationToken.None));
        Assert.Equal(TimeSpan.FromSeconds(1), await Budget.TryTakeTokenAsync("msg|x", 2, 2, maxWait, T0, CancellationToken.None));
        Assert.Null(await Budget.TryTakeTokenAsync("msg|x", 2, 2, maxWait, T0, CancellationToken.None));

        // Refilled by the time that passed, never beyond the burst; a clock behind the bucket's adds nothing.
        Assert.Null(await Budget.TryTakeTokenAsync("msg|x", 2, 2, maxWait, T0 - TimeSpan.FromSeconds(5), CancellationToken.None));
        var later = T0 + TimeSpan.FromSeconds(60);
        Assert.Equal(TimeSpan.Zero, await Budget.TryTakeTokenAsync("msg|x", 2, 2, maxWait, later, CancellationToken.None));
        Assert.Equal(TimeSpan.Zero, await Budget.TryTakeTokenAsync("msg|x", 2, 2, maxWait, later, CancellationToken.None));
        Assert.Equal(TimeSpan.FromSeconds(0.5), await Budget.TryTakeTokenAsync("msg|x", 2, 2, maxWait, later, CancellationToken.None));
    }
}
