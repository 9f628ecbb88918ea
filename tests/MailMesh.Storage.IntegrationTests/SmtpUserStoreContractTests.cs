namespace MailMesh.Storage.IntegrationTests;

/// <summary>The <see cref="ISmtpUserStore"/> contract (SMTP AUTH users made through the admin API), on both stores.</summary>
public abstract class SmtpUserStoreContractTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 2, 3, 4, 5, 678, TimeSpan.Zero);
    private static CancellationToken Ct => CancellationToken.None;

    private Stores? _stores;

    private ISmtpUserStore Store => _stores!.SmtpUsers;

    protected abstract Task<Stores> CreateStoresAsync();

    public async Task InitializeAsync() => _stores = await CreateStoresAsync();

    public async Task DisposeAsync()
    {
        if (_stores is not null)
        {
            await _stores.DisposeAsync();
        }
    }

    private static StoredSmtpUser User(string name, string hash = "pbkdf2-sha256$10000$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==") => new()
    {
        Name = name,
        PasswordHash = hash,
        SenderDomains = "shop.test",
        CreatedAt = T0,
        CreatedBy = "root",
    };

    private async Task<List<(string Action, string Actor, string Target)>> AuditAsync() =>
        [.. (await _stores!.SpoolAdmin.ListAuditAsync(null, 20, Ct)).OrderBy(a => a.Id).Select(a => (a.Action, a.Actor, a.Target))];

    [Fact]
    public async Task Users_are_added_once_whatever_the_case_of_their_name_listed_with_who_made_them_and_audited()
    {
        Assert.True(await Store.AddSmtpUserAsync(User("app@shop.test"), Ct));
        Assert.False(await Store.AddSmtpUserAsync(User("APP@shop.test"), Ct));
        Assert.True(await Store.AddSmtpUserAsync(User("billing") with { SenderDomains = null }, Ct));

        var users = await Store.ListSmtpUsersAsync(Ct);
        Assert.Equal(["app@shop.test", "billing"], users.Select(u => u.Name));
        var app = users[0];
        Assert.Equal(User("x").PasswordHash, app.PasswordHash);
        Assert.Equal("shop.test", app.SenderDomains);
        Assert.Equal((T0, "root"), (app.CreatedAt, app.CreatedBy));
        Assert.True(app.Enabled);
        Assert.Null(app.PasswordChangedAt);
        Assert.Null(users[1].SenderDomains);

        Assert.Equal(
            [("smtp-user.create", "root", "smtp user app@shop.test"), ("smtp-user.create", "root", "smtp user billing")],
            await AuditAsync());
    }

    [Fact]
    public async Task A_user_is_disabled_and_enabled_once_each_way_and_its_password_replaced_each_change_audited()
    {
        Assert.True(await Store.AddSmtpUserAsync(User("app"), Ct));

        Assert.True(await Store.SetSmtpUserEnabledAsync("APP", enabled: false, "alice (via admin-ui)", T0.AddHours(1), Ct));
        Assert.False(await Store.SetSmtpUserEnabledAsync("app", enabled: false, "alice", T0.AddHours(2), Ct));
        var disabled = Assert.Single(await Store.ListSmtpUsersAsync(Ct));
        Assert.False(disabled.Enabled);
        Assert.Equal((T0.AddHours(1), "alice (via admin-ui)"), (disabled.DisabledAt, disabled.DisabledBy));

        Assert.True(await Store.SetSmtpUserEnabledAsync("app", enabled: true, "bob", T0.AddHours(3), Ct));
        Assert.False(await Store.SetSmtpUserEnabledAsync("app", enabled: true, "bob", T0.AddHours(3), Ct));
        Assert.True(Assert.Single(await Store.ListSmtpUsersAsync(Ct)).Enabled);

        const string NewHash = "pbkdf2-sha256$20000$bmV3c2FsdG5ld3NhbHQ=$bmV3aGFzaG5ld2hhc2huZXdoYXNo";
        Assert.True(await Store.SetSmtpUserPasswordAsync("app", NewHash, "carol", T0.AddHours(4), Ct));
        Assert.False(await Store.SetSmtpUserPasswordAsync("nobody", NewHash, "carol", T0.AddHours(4), Ct));
        Assert.False(await Store.SetSmtpUserEnabledAsync("nobody", enabled: false, "carol", T0.AddHours(4), Ct));
        var user = Assert.Single(await Store.ListSmtpUsersAsync(Ct));
        Assert.Equal(NewHash, user.PasswordHash);
        Assert.Equal((T0.AddHours(4), "carol"), (user.PasswordChangedAt, user.PasswordChangedBy));

        Assert.Equal(
            ["smtp-user.create", "smtp-user.disable", "smtp-user.enable", "smtp-user.password"],
            (await AuditAsync()).Select(a => a.Action));
        Assert.Equal(("alice (via admin-ui)", "smtp user app"), (await AuditAsync()).Skip(1).Select(a => (a.Actor, a.Target)).First());
    }
}

public sealed class PostgresSmtpUserStoreTests : SmtpUserStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await PostgresStores.CreateAsync();
}

public sealed class SqliteSmtpUserStoreTests : SmtpUserStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await SqliteStores.CreateAsync();
}
