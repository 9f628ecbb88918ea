namespace MailMesh.Storage.IntegrationTests;

/// <summary>The <see cref="ICredentialStore"/> contract (API keys made through the admin API), on both stores.</summary>
public abstract class CredentialStoreContractTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 5, 678, TimeSpan.Zero);
    private static CancellationToken Ct => CancellationToken.None;

    private Stores? _stores;

    private ICredentialStore Store => _stores!.Credentials;

    protected abstract Task<Stores> CreateStoresAsync();

    public async Task InitializeAsync() => _stores = await CreateStoresAsync();

    public async Task DisposeAsync()
    {
        if (_stores is not null)
        {
            await _stores.DisposeAsync();
        }
    }

    private static StoredApiKey Key(ApiKeyKind kind, string name, string hash) => new()
    {
        Kind = kind,
        Name = name,
        Hash = hash,
        Scopes = kind == ApiKeyKind.Admin ? "messages:read queue:read" : string.Empty,
        SenderDomains = kind == ApiKeyKind.Submission ? "shop.test" : null,
        CreatedAt = T0,
        CreatedBy = "root",
    };

    [Fact]
    public async Task Keys_are_added_once_per_kind_and_name_listed_with_who_made_them_and_audited()
    {
        Assert.True(await Store.AddApiKeyAsync(Key(ApiKeyKind.Admin, "ops", new string('a', 64)), Ct));
        Assert.True(await Store.AddApiKeyAsync(Key(ApiKeyKind.Submission, "ops", new string('b', 64)), Ct));
        Assert.False(await Store.AddApiKeyAsync(Key(ApiKeyKind.Admin, "ops", new string('c', 64)), Ct));

        var keys = await Store.ListApiKeysAsync(Ct);
        Assert.Equal([(ApiKeyKind.Admin, "ops"), (ApiKeyKind.Submission, "ops")], keys.Select(k => (k.Kind, k.Name)));
        var admin = keys[0];
        Assert.Equal(new string('a', 64), admin.Hash);
        Assert.Equal("messages:read queue:read", admin.Scopes);
        Assert.Equal(T0, admin.CreatedAt);
        Assert.Equal("root", admin.CreatedBy);
        Assert.True(admin.Enabled);
        Assert.Equal("shop.test", keys[1].SenderDomains);

        var audit = await _stores!.SpoolAdmin.ListAuditAsync(null, 10, Ct);
        Assert.Equal(["admin key ops", "submission key ops"], audit.Select(a => a.Target).Order());
        Assert.All(audit, a => Assert.Equal(("key.create", "root"), (a.Action, a.Actor)));
    }

    [Fact]
    public async Task A_key_is_disabled_once_keeps_its_row_and_its_name()
    {
        Assert.True(await Store.AddApiKeyAsync(Key(ApiKeyKind.Admin, "ops", new string('a', 64)), Ct));

        Assert.True(await Store.DisableApiKeyAsync(ApiKeyKind.Admin, "ops", "alice", T0.AddHours(1), Ct));
        Assert.False(await Store.DisableApiKeyAsync(ApiKeyKind.Admin, "ops", "alice", T0.AddHours(2), Ct));
        Assert.False(await Store.DisableApiKeyAsync(ApiKeyKind.Submission, "ops", "alice", T0.AddHours(2), Ct));
        Assert.False(await Store.AddApiKeyAsync(Key(ApiKeyKind.Admin, "ops", new string('d', 64)), Ct));

        var key = Assert.Single(await Store.ListApiKeysAsync(Ct));
        Assert.False(key.Enabled);
        Assert.Equal(T0.AddHours(1), key.DisabledAt);
        Assert.Equal("alice", key.DisabledBy);
        var audit = await _stores!.SpoolAdmin.ListAuditAsync(null, 10, Ct);
        Assert.Equal(["key.create", "key.disable"], audit.Select(a => a.Action).Order());
    }
}

public sealed class PostgresCredentialStoreTests : CredentialStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await PostgresStores.CreateAsync();
}

public sealed class SqliteCredentialStoreTests : CredentialStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await SqliteStores.CreateAsync();
}
