using MailMesh.Testing.Infrastructure;
using MailMesh.Storage.Postgres;
using Npgsql;

namespace MailMesh.Storage.IntegrationTests;

/// <summary>
/// The suppression list in each process's memory (<see cref="PostgresSuppressionFilter"/>): a lookup of an address that
/// is not on the list costs no query, a suppression written by another process is seen through LISTEN/NOTIFY, and
/// whenever the set may be behind the table (its listener gone, the list too long) every lookup queries again.
/// </summary>
public sealed class PostgresSuppressionFilterTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 0, TimeSpan.Zero);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private PostgresStores? _stores;

    private PostgresStores Stores => _stores!;

    private static CancellationToken Ct => CancellationToken.None;

    public async Task InitializeAsync() => _stores = await PostgresStores.CreateAsync();

    public async Task DisposeAsync()
    {
        if (_stores is not null)
        {
            await _stores.DisposeAsync();
        }
    }

    [Fact]
    public async Task An_address_not_on_the_list_costs_no_query_and_another_process_s_suppression_is_seen()
    {
        var other = Stores.OpenPolicyStore();
        await other.AddSuppressionAsync(Suppression("before@example.com"), Ct);
        var store = Stores.OpenPolicyStore();

        // The first lookup starts the filter; until it has loaded, lookups query.
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));
        await WaitUntilAsync(() => store.Filter.IsLive, "the filter never went live");
        Assert.NotNull(await store.GetSuppressionAsync("Before@Example.com", Ct));

        var lookups = store.Lookups;
        for (var i = 0; i < 100; i++)
        {
            Assert.Null(await store.GetSuppressionAsync($"user{i}@example.com", Ct));
        }

        Assert.Equal(lookups, store.Lookups);

        // Written by the other process after the load: its notification reaches this one.
        await other.AddSuppressionAsync(Suppression("after@example.com"), Ct);
        await WaitUntilAsync(async () => await store.GetSuppressionAsync("after@example.com", Ct) is not null, "the other process's suppression was never seen");
        Assert.True(store.Filter.IsLive); // seen through the notification, not by a fallback query or a reload
        Assert.Equal(1, store.Filter.Loads);

        // Removed elsewhere: its hash stays, and the query that confirms it finds nothing.
        Assert.True(await other.RemoveSuppressionAsync("before@example.com", Ct));
        Assert.Null(await store.GetSuppressionAsync("before@example.com", Ct));
    }

    [Fact]
    public async Task A_suppression_written_in_this_process_is_found_at_once()
    {
        var store = Stores.OpenPolicyStore();
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));
        await WaitUntilAsync(() => store.Filter.IsLive, "the filter never went live");

        await store.AddSuppressionAsync(Suppression("Fresh@Example.com"), Ct);

        Assert.NotNull(await store.GetSuppressionAsync("fresh@example.com", Ct));
    }

    [Fact]
    public async Task A_suppression_written_by_psql_is_seen_as_one_written_by_a_store()
    {
        var store = Stores.OpenPolicyStore();
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));
        await WaitUntilAsync(() => store.Filter.IsLive, "the filter never went live");

        // The trigger, not the store, announces a row: any writer counts.
        await ExecuteAsync("INSERT INTO policy.suppressions (address, reason, created_at) VALUES ('bulk@example.com', 'import', now())");

        await WaitUntilAsync(async () => await store.GetSuppressionAsync("bulk@example.com", Ct) is not null, "the inserted row was never seen");
        Assert.True(store.Filter.IsLive);
        Assert.Equal(1, store.Filter.Loads);
    }

    [Fact]
    public async Task An_address_too_long_to_announce_is_still_written_and_seen_after_a_reload()
    {
        var store = Stores.OpenPolicyStore();
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));
        await WaitUntilAsync(() => store.Filter.IsLive, "the filter never went live");

        // A NOTIFY payload must be shorter than 8000 bytes; the insert must not fail for it.
        var address = new string('x', 8100) + "@example.com";
        await ExecuteAsync($"INSERT INTO policy.suppressions (address, reason, created_at) VALUES ('{address}', 'import', now())");

        await WaitUntilAsync(() => store.Filter.Loads == 2, "the empty announcement did not make the filter reload");
        await WaitUntilAsync(() => store.Filter.IsLive, "the filter never came back");
        Assert.NotNull(await store.GetSuppressionAsync(address, Ct));
    }

    [Fact]
    public async Task While_the_trigger_is_disabled_every_lookup_queries()
    {
        var store = Stores.OpenPolicyStore();
        store.Filter.PingInterval = TimeSpan.FromMilliseconds(100);
        store.Filter.TriggerRetry = TimeSpan.FromMilliseconds(500);
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));
        await WaitUntilAsync(() => store.Filter.IsLive, "the filter never went live");

        // Nothing would be announced (an administrator, or a new Ingress started before the migrator): the next ping sees it.
        await ExecuteAsync("ALTER TABLE policy.suppressions DISABLE TRIGGER suppressions_announce");
        var pings = store.Filter.Pings;
        await WaitUntilAsync(() => !store.Filter.IsLive, () => $"the filter stayed live without its trigger (pings {pings} then {store.Filter.Pings}, loads {store.Filter.Loads})");
        await ExecuteAsync("INSERT INTO policy.suppressions (address, reason, created_at) VALUES ('silent@example.com', 'import', now())");
        var lookups = store.Lookups;
        Assert.NotNull(await store.GetSuppressionAsync("silent@example.com", Ct));
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));
        Assert.Equal(lookups + 2, store.Lookups);

        await ExecuteAsync("ALTER TABLE policy.suppressions ENABLE TRIGGER suppressions_announce");
        await WaitUntilAsync(() => store.Filter.IsLive, "the filter never came back with its trigger");
        Assert.NotNull(await store.GetSuppressionAsync("silent@example.com", Ct));
    }

    [Fact]
    public async Task While_its_listener_is_gone_every_lookup_queries_and_the_set_is_reloaded_when_it_is_back()
    {
        var other = Stores.OpenPolicyStore();
        var store = Stores.OpenPolicyStore();
        store.Filter.Backoff = [TimeSpan.FromSeconds(3)];
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));
        await WaitUntilAsync(() => store.Filter.IsLive, "the filter never went live");

        // PostgreSQL ends the listening session (a restart, a failover, an administrator): nothing more is announced.
        await ExecuteAsync(
            """
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND (query LIKE 'LISTEN %' OR query LIKE 'SELECT pg_notify%' OR query = 'SELECT address FROM policy.suppressions')
            """);
        await WaitUntilAsync(() => !store.Filter.IsLive, "the filter did not notice its listener was gone");

        // Written while nobody listens: the lookup goes to the table.
        await other.AddSuppressionAsync(Suppression("meanwhile@example.com"), Ct);
        var lookups = store.Lookups;
        Assert.NotNull(await store.GetSuppressionAsync("meanwhile@example.com", Ct));
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));
        Assert.Equal(lookups + 2, store.Lookups);

        // Back: listening again and reloaded, so what was written meanwhile is in the set.
        await WaitUntilAsync(() => store.Filter.IsLive, "the filter never came back");
        Assert.Equal(2, store.Filter.Loads);
        Assert.NotNull(await store.GetSuppressionAsync("meanwhile@example.com", Ct));
        lookups = store.Lookups;
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));
        Assert.Equal(lookups, store.Lookups);
    }

    [Fact]
    public async Task A_list_longer_than_the_limit_is_checked_by_query()
    {
        var other = Stores.OpenPolicyStore();
        for (var i = 0; i < 5; i++)
        {
            await other.AddSuppressionAsync(Suppression($"s{i}@example.com"), Ct);
        }

        var store = Stores.OpenPolicyStore();
        store.Filter.MaxAddresses = 3;
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));

        // The load gives up at the limit and the filter stays out of the way.
        await WaitUntilAsync(() => store.Filter.Overflows == 1, "the load did not stop at the limit");
        Assert.False(store.Filter.IsLive);
        Assert.Equal(0, store.Filter.Loads);
        var lookups = store.Lookups;
        Assert.NotNull(await store.GetSuppressionAsync("s4@example.com", Ct));
        Assert.Null(await store.GetSuppressionAsync("nobody@example.com", Ct));
        Assert.Equal(lookups + 2, store.Lookups);
    }

    [Fact]
    public void The_hash_is_stable_and_tells_keys_apart()
    {
        Assert.Equal(PostgresSuppressionFilter.Hash("a@example.com"), PostgresSuppressionFilter.Hash("a@example.com"));
        Assert.NotEqual(PostgresSuppressionFilter.Hash("a@example.com"), PostgresSuppressionFilter.Hash("b@example.com"));
        Assert.NotEqual(PostgresSuppressionFilter.Hash("\u0100"), PostgresSuppressionFilter.Hash("\u0001\u0001"));
    }

    private static Suppression Suppression(string address) => new() { Address = address, Reason = "hard bounce 550 5.1.1", CreatedAt = T0 };

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(Stores.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static Task WaitUntilAsync(Func<bool> condition, Func<string> failure) => Eventually.WaitUntilAsync(condition, Patience, failure);

    private static Task WaitUntilAsync(Func<bool> condition, string failure) => Eventually.WaitUntilAsync(condition, Patience, failure);

    private static Task WaitUntilAsync(Func<Task<bool>> condition, string failure) => Eventually.WaitUntilAsync(condition, Patience, failure);
}
