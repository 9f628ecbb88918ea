namespace MailMesh.Storage.IntegrationTests;

/// <summary>The <see cref="IPolicyStore"/> contract; a fresh, migrated store per test.</summary>
public abstract class PolicyStoreContractTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 0, TimeSpan.Zero);
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    private Stores? _stores;

    private IPolicyStore Policy => _stores!.Policy;

    private static CancellationToken Ct => CancellationToken.None;

    protected abstract Task<Stores> CreateStoresAsync();

    public async Task InitializeAsync() => _stores = await CreateStoresAsync();

    public async Task DisposeAsync()
    {
        if (_stores is not null)
        {
            await _stores.DisposeAsync();
        }
    }

    [Fact]
    public async Task Suppressions_are_added_found_case_insensitively_listed_newest_first_and_removed()
    {
        Assert.Null(await Policy.GetSuppressionAsync("bob@example.com", Ct));

        await Policy.AddSuppressionAsync(new Suppression { Address = "Bob@Example.COM", Reason = "5.1.1 bounce", CreatedAt = T0 }, Ct);
        await Policy.AddSuppressionAsync(new Suppression { Address = "carol@example.com", Reason = "complaint", CreatedAt = T0 + Minute }, Ct);

        var bob = await Policy.GetSuppressionAsync("bob@example.com", Ct);
        Assert.Equal(new Suppression { Address = "bob@example.com", Reason = "5.1.1 bounce", CreatedAt = T0 }, bob);
        Assert.NotNull(await Policy.GetSuppressionAsync("BOB@example.com", Ct));

        var list = await Policy.ListSuppressionsAsync(10, Ct);
        Assert.Equal(["carol@example.com", "bob@example.com"], list.Select(s => s.Address));
        Assert.Single(await Policy.ListSuppressionsAsync(1, Ct));

        Assert.True(await Policy.RemoveSuppressionAsync("BOB@EXAMPLE.COM", Ct));
        Assert.False(await Policy.RemoveSuppressionAsync("bob@example.com", Ct));
        Assert.Null(await Policy.GetSuppressionAsync("bob@example.com", Ct));
    }

    [Fact]
    public async Task Suppressions_of_an_internationalised_domain_match_in_either_form()
    {
        // One normaliser (MailMesh.Smtp.NormalizedAddress): the key is local part lower-cased, domain in A-labels.
        await Policy.AddSuppressionAsync(new Suppression { Address = "Dora@BÜCHER.example", Reason = "5.1.1 bounce", CreatedAt = T0 }, Ct);

        Assert.NotNull(await Policy.GetSuppressionAsync("dora@xn--bcher-kva.example", Ct));
        Assert.NotNull(await Policy.GetSuppressionAsync("DORA@bücher.example", Ct));
        Assert.True(await Policy.RemoveSuppressionAsync("dora@Bücher.Example", Ct));
        Assert.Null(await Policy.GetSuppressionAsync("dora@xn--bcher-kva.example", Ct));
    }

    [Fact]
    public async Task Suppressing_again_keeps_the_first_time_and_the_latest_reason()
    {
        await Policy.AddSuppressionAsync(new Suppression { Address = "a@example.com", Reason = "bounce", CreatedAt = T0 }, Ct);
        await Policy.AddSuppressionAsync(new Suppression { Address = "a@example.com", Reason = "complaint", CreatedAt = T0 + Minute }, Ct);

        var suppression = await Policy.GetSuppressionAsync("a@example.com", Ct);
        Assert.Equal("complaint", suppression!.Reason);
        Assert.Equal(T0, suppression.CreatedAt);
        Assert.Single(await Policy.ListSuppressionsAsync(10, Ct));
    }

    [Fact]
    public async Task Source_and_expiry_are_stored_listed_and_replaced_by_a_later_suppression()
    {
        await Policy.AddSuppressionAsync(
            new Suppression { Address = "dave@example.com", Reason = "hard bounce 550 5.1.1", Source = SuppressionSources.Bounce, CreatedAt = T0 }, Ct);
        await Policy.AddSuppressionAsync(
            new Suppression
            {
                Address = "erin@example.com",
                Reason = "complained",
                Source = SuppressionSources.Complaint,
                CreatedAt = T0 + Minute,
                ExpiresAt = T0 + TimeSpan.FromDays(30),
            },
            Ct);

        var dave = await Policy.GetSuppressionAsync("dave@example.com", Ct);
        Assert.Equal(SuppressionSources.Bounce, dave!.Source);
        Assert.Null(dave.ExpiresAt);
        var erin = await Policy.GetSuppressionAsync("erin@example.com", Ct);
        Assert.Equal(
            new Suppression { Address = "erin@example.com", Reason = "complained", Source = SuppressionSources.Complaint, CreatedAt = T0 + Minute, ExpiresAt = T0 + TimeSpan.FromDays(30) },
            erin);
        Assert.False(erin!.IsActiveAt(T0 + TimeSpan.FromDays(30)));
        Assert.True(erin.IsActiveAt(T0 + TimeSpan.FromDays(29)));

        var list = await Policy.ListSuppressionsAsync(10, Ct);
        Assert.Equal([SuppressionSources.Complaint, SuppressionSources.Bounce], list.Select(s => s.Source));
        Assert.Equal([T0 + TimeSpan.FromDays(30), null], list.Select(s => s.ExpiresAt));

        // An administrator's later suppression replaces the source and the expiry (and keeps the first time).
        await Policy.AddSuppressionAsync(
            new Suppression { Address = "dave@example.com", Reason = "until March", Source = SuppressionSources.Api, CreatedAt = T0 + Minute, ExpiresAt = T0 + TimeSpan.FromDays(60) },
            Ct);
        dave = await Policy.GetSuppressionAsync("dave@example.com", Ct);
        Assert.Equal((SuppressionSources.Api, "until March", T0, T0 + TimeSpan.FromDays(60)), (dave!.Source, dave.Reason, dave.CreatedAt, dave.ExpiresAt));

        // And a later one without expiry makes it permanent again.
        await Policy.AddSuppressionAsync(new Suppression { Address = "dave@example.com", Reason = "again", Source = SuppressionSources.Bounce, CreatedAt = T0 }, Ct);
        Assert.Null((await Policy.GetSuppressionAsync("dave@example.com", Ct))!.ExpiresAt);
    }

    [Fact]
    public async Task Counters_count_within_a_fixed_window_and_start_over_in_the_next()
    {
        Assert.Equal(1, await Policy.IncrementCounterAsync("sender:a", T0, Minute, 1, Ct));
        Assert.Equal(6, await Policy.IncrementCounterAsync("sender:a", T0 + TimeSpan.FromSeconds(59), Minute, 5, Ct));
        Assert.Equal(1, await Policy.IncrementCounterAsync("sender:b", T0, Minute, 1, Ct));
        Assert.Equal(2, await Policy.IncrementCounterAsync("sender:a", T0 + Minute, Minute, 2, Ct));

        // A key may be counted in windows of different lengths.
        Assert.Equal(9, await Policy.IncrementCounterAsync("sender:a", T0 + Minute, TimeSpan.FromHours(1), 9, Ct));

        // Long after, old windows are pruned and counting carries on.
        Assert.Equal(1, await Policy.IncrementCounterAsync("sender:a", T0 + TimeSpan.FromDays(1), Minute, 1, Ct));
        Assert.Equal(1, await Policy.IncrementCounterAsync("sender:b", T0 + TimeSpan.FromDays(1), Minute, 1, Ct));
    }

    [Fact]
    public async Task Counters_are_atomic_under_concurrency()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            var seen = new List<long>();
            for (var i = 0; i < 50; i++)
            {
                seen.Add(await Policy.IncrementCounterAsync("ip:192.0.2.1", T0, TimeSpan.FromHours(1), 1, Ct));
            }

            return seen;
        })));

        var all = results.SelectMany(r => r).Order().ToList();
        Assert.Equal(Enumerable.Range(1, 400).Select(i => (long)i), all);
        Assert.Equal(401, await Policy.IncrementCounterAsync("ip:192.0.2.1", T0, TimeSpan.FromHours(1), 1, Ct));
    }
}

public sealed class PostgresPolicyStoreTests : PolicyStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await PostgresStores.CreateAsync();
}

public sealed class SqlitePolicyStoreTests : PolicyStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await SqliteStores.CreateAsync();
}
