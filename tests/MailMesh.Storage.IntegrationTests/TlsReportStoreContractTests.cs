namespace MailMesh.Storage.IntegrationTests;

/// <summary>The <see cref="ITlsReportStore"/> contract (RFC 8460 aggregates shared by replicas); a fresh store per test.</summary>
public abstract class TlsReportStoreContractTests : IAsyncLifetime
{
    private static readonly DateOnly Day = new(2030, 1, 2);
    private Stores? _stores;

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

    private static TlsReportCount Count(string domain, string resultType, long count, string day = "") => new()
    {
        Day = day.Length > 0 ? DateOnly.Parse(day, System.Globalization.CultureInfo.InvariantCulture) : Day,
        PolicyDomain = domain,
        PolicyType = "sts",
        PolicyStrings = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400",
        ResultType = resultType,
        MxHost = resultType.Length > 0 ? "mx.example.com" : string.Empty,
        ReceivingIp = resultType.Length > 0 ? "192.0.2.25" : string.Empty,
        Count = count,
    };

    [Fact]
    public async Task Counts_from_two_replicas_add_up_to_one_aggregate()
    {
        var replicaA = _stores!.OpenTlsReports();
        var replicaB = _stores.OpenTlsReports();

        await replicaA.AddAsync([Count("example.com", string.Empty, 3), Count("example.com", "certificate-expired", 1)], Ct);
        await replicaB.AddAsync([Count("example.com", string.Empty, 2), Count("example.com", "certificate-expired", 4)], Ct);
        await replicaB.AddAsync([Count("other.example", string.Empty, 1), Count("example.com", string.Empty, 9, "2030-01-03")], Ct);

        var counts = await replicaA.ReadAsync(Day, "example.com", Ct);
        Assert.Equal(5, Assert.Single(counts, c => c.ResultType.Length == 0).Count);
        var failure = Assert.Single(counts, c => c.ResultType == "certificate-expired");
        Assert.Equal((5L, "mx.example.com", "192.0.2.25"), (failure.Count, failure.MxHost, failure.ReceivingIp));
        Assert.Contains("mode: enforce", failure.PolicyStrings, StringComparison.Ordinal);
        Assert.Equal(["example.com", "other.example"], await replicaB.UnsentDomainsAsync(Day, Ct));
    }

    [Fact]
    public async Task One_replica_claims_a_report_and_a_released_claim_can_be_taken_again()
    {
        var replicaA = _stores!.OpenTlsReports();
        var replicaB = _stores.OpenTlsReports();
        await replicaA.AddAsync([Count("example.com", string.Empty, 1)], Ct);

        Assert.True(await replicaA.ClaimAsync(Day, "example.com", "a", DateTimeOffset.UtcNow, Ct));
        Assert.False(await replicaB.ClaimAsync(Day, "example.com", "b", DateTimeOffset.UtcNow, Ct));
        Assert.Empty(await replicaB.UnsentDomainsAsync(Day, Ct));

        await replicaA.ReleaseAsync(Day, "example.com", Ct);
        Assert.True(await replicaB.ClaimAsync(Day, "example.com", "b", DateTimeOffset.UtcNow, Ct));
    }

    [Fact]
    public async Task Pruning_drops_older_days()
    {
        var store = _stores!.OpenTlsReports();
        await store.AddAsync([Count("example.com", string.Empty, 1), Count("example.com", string.Empty, 1, "2030-01-09")], Ct);

        await store.PruneAsync(new DateOnly(2030, 1, 5), Ct);

        Assert.Empty(await store.ReadAsync(Day, "example.com", Ct));
        Assert.Single(await store.ReadAsync(new DateOnly(2030, 1, 9), "example.com", Ct));
    }
}

public sealed class PostgresTlsReportStoreTests : TlsReportStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await PostgresStores.CreateAsync();
}

public sealed class SqliteTlsReportStoreTests : TlsReportStoreContractTests
{
    protected override async Task<Stores> CreateStoresAsync() => await SqliteStores.CreateAsync();
}
