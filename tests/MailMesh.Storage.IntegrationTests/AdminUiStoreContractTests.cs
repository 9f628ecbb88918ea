using System.Xml.Linq;
using MailMesh.Storage.Postgres;
using MailMesh.Storage.Sqlite;
using Npgsql;

namespace MailMesh.Storage.IntegrationTests;

/// <summary>
/// The admin UI's shared state (issue 12, migration 0023) on both stores: failed logins counted atomically by any
/// number of replicas, lockouts, and the Data Protection key ring that protects the UI's session cookie.
/// </summary>
public abstract class AdminUiStoreContractTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 5, 678, TimeSpan.Zero);
    private static readonly TimeSpan Lockout = TimeSpan.FromMinutes(15);
    private static CancellationToken Ct => CancellationToken.None;

    protected Stores Stores { get; private set; } = null!;

    protected abstract Task<Stores> CreateStoresAsync();

    /// <summary>A login store with connections of its own (another replica).</summary>
    protected abstract IAdminLoginStore OpenLoginStore();

    /// <summary>A key store with connections of its own (another replica).</summary>
    protected abstract IAdminUiKeyStore OpenKeyStore();

    public async Task InitializeAsync() => Stores = await CreateStoresAsync();

    public virtual async Task DisposeAsync() => await Stores.DisposeAsync();

    [Fact]
    public async Task Failures_count_up_to_a_lockout_that_ends_and_then_counting_starts_again()
    {
        var store = OpenLoginStore();
        Assert.Equal(new AdminLoginFailures(1, null), await store.RecordFailureAsync("alice", T0, 3, Lockout, Ct));
        Assert.Equal(new AdminLoginFailures(2, null), await store.RecordFailureAsync("ALICE", T0.AddSeconds(1), 3, Lockout, Ct));
        Assert.Null(await store.GetLockedUntilAsync("alice", T0.AddSeconds(2), Ct));

        var locked = await store.RecordFailureAsync("Alice", T0.AddSeconds(2), 3, Lockout, Ct);
        Assert.Equal(new AdminLoginFailures(3, T0.AddSeconds(2) + Lockout), locked);
        Assert.Equal(T0.AddSeconds(2) + Lockout, await store.GetLockedUntilAsync("alice", T0.AddMinutes(1), Ct));

        // A failure during the lockout (a replica that checked just before it began) neither shortens nor extends it.
        Assert.Equal(new AdminLoginFailures(4, T0.AddSeconds(2) + Lockout), await store.RecordFailureAsync("alice", T0.AddMinutes(5), 3, Lockout, Ct));

        // When it has ended, the account is open, and the next failure counts 1 again.
        Assert.Null(await store.GetLockedUntilAsync("alice", T0.AddSeconds(2) + Lockout, Ct));
        Assert.Equal(new AdminLoginFailures(1, null), await store.RecordFailureAsync("alice", T0.AddMinutes(20), 3, Lockout, Ct));
        Assert.Null(await store.GetLockedUntilAsync("bob", T0, Ct));
    }

    [Fact]
    public async Task A_success_clears_the_count_and_a_day_without_failures_forgets_it()
    {
        var store = OpenLoginStore();
        await store.RecordFailureAsync("alice", T0, 3, Lockout, Ct);
        await store.RecordFailureAsync("alice", T0, 3, Lockout, Ct);
        await store.ClearFailuresAsync("Alice", Ct);
        Assert.Equal(1, (await store.RecordFailureAsync("alice", T0, 3, Lockout, Ct)).Count);

        Assert.Equal(2, (await store.RecordFailureAsync("alice", T0 + AdminLogins.ForgetAfter, 3, Lockout, Ct)).Count);
        Assert.Equal(1, (await store.RecordFailureAsync("alice", T0 + AdminLogins.ForgetAfter + AdminLogins.ForgetAfter + TimeSpan.FromSeconds(1), 3, Lockout, Ct)).Count);
    }

    [Fact]
    public async Task A_limit_of_one_locks_at_the_first_failure()
    {
        var store = OpenLoginStore();
        Assert.Equal(new AdminLoginFailures(1, T0 + Lockout), await store.RecordFailureAsync("alice", T0, 1, Lockout, Ct));
    }

    [Fact]
    public async Task Replicas_counting_at_once_lose_no_failure_and_lock_after_the_limit_in_total()
    {
        // Two replicas (each its own connections), 20 failures each, all at once: every failure is counted once.
        var replicas = new[] { OpenLoginStore(), OpenLoginStore() };
        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(i =>
            Task.Run(() => replicas[i % 2].RecordFailureAsync("alice", T0, 25, Lockout, Ct))));

        Assert.Equal(Enumerable.Range(1, 40), results.Select(r => r.Count).Order());
        Assert.All(results.Where(r => r.Count < 25), r => Assert.Null(r.LockedUntil));
        Assert.All(results.Where(r => r.Count >= 25), r => Assert.Equal(T0 + Lockout, r.LockedUntil));
        foreach (var replica in replicas)
        {
            Assert.Equal(T0 + Lockout, await replica.GetLockedUntilAsync("alice", T0, Ct));
        }
    }

    [Fact]
    public async Task Pruning_forgets_day_old_counts_but_never_a_lockout_in_force()
    {
        var store = OpenLoginStore();
        await store.RecordFailureAsync("old", T0, 3, Lockout, Ct);
        await store.RecordFailureAsync("long-lock", T0, 1, TimeSpan.FromDays(2), Ct);
        await store.RecordFailureAsync("recent", T0 + AdminLogins.ForgetAfter, 3, Lockout, Ct);

        Assert.Equal(1, await store.PruneFailuresAsync(T0 + AdminLogins.ForgetAfter + TimeSpan.FromSeconds(1), Ct));
        Assert.NotNull(await store.GetLockedUntilAsync("long-lock", T0 + AdminLogins.ForgetAfter + TimeSpan.FromSeconds(1), Ct));
        Assert.Equal(2, (await store.RecordFailureAsync("recent", T0 + AdminLogins.ForgetAfter + TimeSpan.FromSeconds(2), 3, Lockout, Ct)).Count);
    }

    [Fact]
    public async Task Keys_stored_by_one_replica_are_read_by_another_in_the_order_stored()
    {
        var writer = OpenKeyStore();
        Assert.Empty(writer.GetAllElements());
        var first = new XElement("key", new XAttribute("id", "1"), new XElement("descriptor", "secret <one> & \"two\""));
        var second = new XElement("key", new XAttribute("id", "2"));
        writer.StoreElement(first, "key-1");
        writer.StoreElement(second, "key-2");

        var read = OpenKeyStore().GetAllElements();

        Assert.Equal([first.ToString(), second.ToString()], read.Select(e => e.ToString()));
        await using (await writer.LockAsync(Ct))
        {
            // The lock does not stop reads or writes: it only orders replicas that take it.
            Assert.Equal(2, OpenKeyStore().GetAllElements().Count);
        }
    }
}

public sealed class PostgresAdminUiStoreTests : AdminUiStoreContractTests
{
    private readonly List<NpgsqlDataSource> _dataSources = [];

    private PostgresStores Postgres => (PostgresStores)Stores;

    protected override async Task<Stores> CreateStoresAsync() => await PostgresStores.CreateAsync();

    protected override IAdminLoginStore OpenLoginStore() => new PostgresAdminLoginStore(NewDataSource());

    protected override IAdminUiKeyStore OpenKeyStore() => new PostgresAdminUiKeyStore(NewDataSource());

    private NpgsqlDataSource NewDataSource()
    {
        var dataSource = PostgresDataSource.Create(Postgres.ConnectionString);
        _dataSources.Add(dataSource);
        return dataSource;
    }

    public override async Task DisposeAsync()
    {
        foreach (var dataSource in _dataSources)
        {
            await dataSource.DisposeAsync();
        }

        await base.DisposeAsync();
    }

    [Fact]
    public async Task The_key_ring_lock_is_held_until_disposed_and_then_free_for_the_next_replica()
    {
        var dataSource = NewDataSource();
        await using var probe = await dataSource.OpenConnectionAsync();

        async Task<bool> FreeAsync()
        {
            await using var transaction = await probe.BeginTransactionAsync();
            await using var command = new NpgsqlCommand("SELECT pg_try_advisory_xact_lock(@key)", probe, transaction);
            command.Parameters.AddWithValue("key", PostgresAdminUiKeyStore.LockKey);
            return (bool)(await command.ExecuteScalarAsync())!;
        }

        var held = await OpenKeyStore().LockAsync(CancellationToken.None);
        Assert.False(await FreeAsync());
        await held.DisposeAsync();
        Assert.True(await FreeAsync());
    }
}

public sealed class SqliteAdminUiStoreTests : AdminUiStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await SqliteStores.CreateAsync();

    protected override IAdminLoginStore OpenLoginStore() => new SqliteAdminLoginStore(((SqliteStores)Stores).NewDatabase());

    protected override IAdminUiKeyStore OpenKeyStore() => new SqliteAdminUiKeyStore(((SqliteStores)Stores).NewDatabase(), TimeProvider.System);
}
