namespace MailMesh.Storage.IntegrationTests;

/// <summary>The <see cref="IWebhookStore"/> contract (webhook endpoints made through the admin API, their history), on both stores.</summary>
public abstract class WebhookStoreContractTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 5, 678, TimeSpan.Zero);
    private static CancellationToken Ct => CancellationToken.None;

    private Stores? _stores;

    private IWebhookStore Store => _stores!.Webhooks;

    protected abstract Task<Stores> CreateStoresAsync();

    public async Task InitializeAsync() => _stores = await CreateStoresAsync();

    public async Task DisposeAsync()
    {
        if (_stores is not null)
        {
            await _stores.DisposeAsync();
        }
    }

    private static WebhookEndpoint Endpoint(string url, DateTimeOffset? at = null) => new()
    {
        Id = Guid.NewGuid(),
        Url = url,
        Secret = "whsec-1",
        Events = "Bounced,Expired",
        CreatedAt = at ?? T0,
        CreatedBy = "root",
    };

    private static WebhookDelivery Delivery(Guid endpoint, DateTimeOffset at, int? status = 200, string? error = null) => new()
    {
        EndpointId = endpoint,
        EventId = Guid.NewGuid().ToString(),
        EventType = "Delivered",
        MessageId = Guid.NewGuid(),
        At = at,
        StatusCode = status,
        Error = error,
        DurationMs = 12,
    };

    [Fact]
    public async Task Endpoints_are_added_listed_updated_and_deleted_each_change_audited()
    {
        var first = Endpoint("https://hooks.example/a");
        var second = Endpoint("http://hooks.example/b", T0.AddMinutes(1)) with { Secret = null, Events = null };
        await Store.AddEndpointAsync(first, Ct);
        await Store.AddEndpointAsync(second, Ct);

        var listed = await Store.ListEndpointsAsync(Ct);
        Assert.Equal([first, second], listed);
        Assert.Equal(first, await Store.GetEndpointAsync(first.Id, Ct));
        Assert.Null(await Store.GetEndpointAsync(Guid.NewGuid(), Ct));

        var disabled = first with { Enabled = false, Url = "https://hooks.example/a2", UpdatedAt = T0.AddHours(1), UpdatedBy = "alice" };
        Assert.True(await Store.UpdateEndpointAsync(disabled, WebhookAudit.Disabled, Ct));
        Assert.Equal(disabled, await Store.GetEndpointAsync(first.Id, Ct));
        Assert.False(await Store.UpdateEndpointAsync(disabled with { Id = Guid.NewGuid() }, WebhookAudit.Updated, Ct));

        Assert.True(await Store.DeleteEndpointAsync(second.Id, "bob", T0.AddHours(2), Ct));
        Assert.False(await Store.DeleteEndpointAsync(second.Id, "bob", T0.AddHours(2), Ct));
        Assert.Equal([first.Id], (await Store.ListEndpointsAsync(Ct)).Select(e => e.Id));

        var audit = await _stores!.SpoolAdmin.ListAuditAsync(null, 10, Ct);
        Assert.Equal(
            [
                ("webhook.delete", "bob", $"webhook {second.Id} http://hooks.example/b"),
                ("webhook.disable", "alice", $"webhook {first.Id} https://hooks.example/a2"),
                ("webhook.create", "root", $"webhook {second.Id} http://hooks.example/b"),
                ("webhook.create", "root", $"webhook {first.Id} https://hooks.example/a"),
            ],
            audit.Select(a => (a.Action, a.Actor, a.Target)));
    }

    [Fact]
    public async Task History_is_paged_newest_first_per_endpoint_pruned_by_age_and_deleted_with_its_endpoint()
    {
        var endpoint = Endpoint("https://hooks.example/a");
        var other = Endpoint("https://hooks.example/b");
        await Store.AddEndpointAsync(endpoint, Ct);
        await Store.AddEndpointAsync(other, Ct);
        var rows = Enumerable.Range(0, 5).Select(i => Delivery(endpoint.Id, T0.AddMinutes(i))).ToList();
        rows[3] = rows[3] with { StatusCode = null, Error = "timed out after 00:00:10", MessageId = null, EventType = "Test" };
        await Store.RecordDeliveriesAsync(rows, Ct);
        await Store.RecordDeliveriesAsync([Delivery(other.Id, T0.AddHours(1)), Delivery(Guid.NewGuid(), T0)], Ct);

        var page1 = await Store.ListDeliveriesAsync(endpoint.Id, null, 2, Ct);
        var page2 = await Store.ListDeliveriesAsync(endpoint.Id, page1[^1].Id, 2, Ct);
        var page3 = await Store.ListDeliveriesAsync(endpoint.Id, page2[^1].Id, 2, Ct);
        var all = page1.Concat(page2).Concat(page3).ToList();
        Assert.Equal([2, 2, 1], new[] { page1.Count, page2.Count, page3.Count });
        Assert.Equal(rows.Select(r => r.EventId).Reverse(), all.Select(d => d.EventId));
        Assert.Equal(all.Select(d => d.Id).OrderDescending(), all.Select(d => d.Id));
        Assert.Equal(rows[0] with { Id = all[^1].Id }, all[^1]);
        var failed = all[1];
        Assert.Equal((null, "timed out after 00:00:10", null, "Test", false), (failed.StatusCode, failed.Error, failed.MessageId, failed.EventType, failed.Succeeded));
        Assert.True(all[0].Succeeded);
        Assert.Single(await Store.ListDeliveriesAsync(other.Id, null, 10, Ct));

        Assert.Equal(2, await Store.PruneDeliveriesAsync(T0.AddMinutes(2), Ct));
        Assert.Equal(3, (await Store.ListDeliveriesAsync(endpoint.Id, null, 10, Ct)).Count);

        Assert.True(await Store.DeleteEndpointAsync(endpoint.Id, "root", T0, Ct));
        Assert.Empty(await Store.ListDeliveriesAsync(endpoint.Id, null, 10, Ct));
        Assert.Single(await Store.ListDeliveriesAsync(other.Id, null, 10, Ct));
    }
}

public sealed class PostgresWebhookStoreTests : WebhookStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await PostgresStores.CreateAsync();
}

public sealed class SqliteWebhookStoreTests : WebhookStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await SqliteStores.CreateAsync();
}
