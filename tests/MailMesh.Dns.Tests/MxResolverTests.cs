using MailMesh.Contracts;

namespace MailMesh.Dns.Tests;

public sealed class MxResolverTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Exchangers_come_in_preference_order_with_their_addresses()
    {
        using var f = new ResolverFixture();
        f.Server
            .AddMx("example.test", 20, "mx2.example.test")
            .AddMx("example.test", 10, "mx1.example.test")
            .AddMx("example.test", 30, "mx3.example.test")
            .AddAddress("mx1.example.test", "192.0.2.1")
            .AddAddress("mx1.example.test", "2001:db8::1")
            .AddAddress("mx2.example.test", "192.0.2.2")
            .AddAddress("mx3.example.test", "192.0.2.3");

        var answer = await f.Resolver.ResolveAsync("Example.Test.", None);

        Assert.Equal(MxStatus.Ok, answer.Status);
        Assert.Equal(["mx1.example.test", "mx2.example.test", "mx3.example.test"], answer.Hosts.Select(h => h.Name));
        Assert.Equal([10, 20, 30], answer.Hosts.Select(h => h.Preference));
        Assert.Equal(["192.0.2.1", "2001:db8::1"], answer.Hosts[0].Addresses);
        Assert.False(answer.FromCache);
    }

    [Fact]
    public async Task PreferIPv6_lists_ipv6_addresses_first()
    {
        using var f = new ResolverFixture(o => o.PreferIPv6 = true);
        f.Server.AddMx("v6.test", 10, "mx.v6.test").AddAddress("mx.v6.test", "192.0.2.1").AddAddress("mx.v6.test", "2001:db8::1");

        var answer = await f.Resolver.ResolveAsync("v6.test", None);

        Assert.Equal(["2001:db8::1", "192.0.2.1"], answer.Hosts[0].Addresses);
    }

    [Fact]
    public async Task Equal_preferences_are_shuffled_on_every_answer()
    {
        using var f = new ResolverFixture();
        f.Server
            .AddMx("spread.test", 10, "a.spread.test")
            .AddMx("spread.test", 10, "b.spread.test")
            .AddMx("spread.test", 20, "c.spread.test")
            .AddAddress("a.spread.test", "192.0.2.1")
            .AddAddress("b.spread.test", "192.0.2.2")
            .AddAddress("c.spread.test", "192.0.2.3");

        var orders = new HashSet<string>();
        for (var i = 0; i < 200 && orders.Count < 2; i++)
        {
            var answer = await f.Resolver.ResolveAsync("spread.test", None);
            Assert.Equal("c.spread.test", answer.Hosts[2].Name);
            orders.Add(string.Join(",", answer.Hosts.Take(2).Select(h => h.Name)));
        }

        Assert.Equal(["a.spread.test,b.spread.test", "b.spread.test,a.spread.test"], orders.Order());
        Assert.Equal(1, f.Server.QueryCount("spread.test", "MX"));
    }

    [Fact]
    public async Task Domain_without_MX_but_with_an_address_is_its_own_exchanger()
    {
        using var f = new ResolverFixture();
        f.Server.AddAddress("implicit.test", "192.0.2.7").AddAddress("implicit.test", "2001:db8::7");

        var answer = await f.Resolver.ResolveAsync("implicit.test", None);

        Assert.Equal(MxStatus.Ok, answer.Status);
        var host = Assert.Single(answer.Hosts);
        Assert.Equal("implicit.test", host.Name);
        Assert.Equal(0, host.Preference);
        Assert.Equal(["192.0.2.7", "2001:db8::7"], host.Addresses);
    }

    [Fact]
    public async Task Null_MX_means_the_domain_accepts_no_mail()
    {
        using var f = new ResolverFixture();
        f.Server.AddNullMx("nomail.test").AddAddress("nomail.test", "192.0.2.9");

        var answer = await f.Resolver.ResolveAsync("nomail.test", None);

        Assert.Equal(MxStatus.NullMx, answer.Status);
        Assert.Empty(answer.Hosts);
        Assert.Equal(0, f.Server.QueryCount("nomail.test", "A"));
    }

    [Fact]
    public async Task Null_MX_next_to_real_exchangers_is_ignored()
    {
        using var f = new ResolverFixture();
        f.Server.AddNullMx("mixed.test").AddMx("mixed.test", 10, "mx.mixed.test").AddAddress("mx.mixed.test", "192.0.2.10");

        var answer = await f.Resolver.ResolveAsync("mixed.test", None);

        Assert.Equal(MxStatus.Ok, answer.Status);
        Assert.Equal("mx.mixed.test", Assert.Single(answer.Hosts).Name);
    }

    [Fact]
    public async Task NXDOMAIN_is_no_such_domain()
    {
        using var f = new ResolverFixture();

        var answer = await f.Resolver.ResolveAsync("missing.test", None);

        Assert.Equal(MxStatus.NoSuchDomain, answer.Status);
        Assert.Contains("NXDOMAIN", answer.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_MX_and_no_address_is_no_such_domain()
    {
        using var f = new ResolverFixture();
        f.Server.AddTxt("textonly.test", "v=spf1 -all");

        var answer = await f.Resolver.ResolveAsync("textonly.test", None);

        Assert.Equal(MxStatus.NoSuchDomain, answer.Status);
    }

    [Fact]
    public async Task Invalid_names_are_no_such_domain_without_a_query()
    {
        using var f = new ResolverFixture();

        var answer = await f.Resolver.ResolveAsync("bad..name", None);

        Assert.Equal(MxStatus.NoSuchDomain, answer.Status);
        Assert.Equal(0, f.Server.TotalQueries);
    }

    [Fact]
    public async Task A_cached_answer_carries_what_is_left_of_its_TTL()
    {
        // Delivery keeps answers for this long (issue 8), so the Dns service must never hand out more than it has left.
        using var f = new ResolverFixture(o => o.TemporaryFailureTtl = TimeSpan.FromSeconds(5));
        f.Server.AddMx("broken.test", 10, "mx.broken.test").SetServerFailure("broken.test");

        await f.Resolver.ResolveAsync("broken.test", None);
        f.Time.Advance(TimeSpan.FromSeconds(2));
        var later = await f.Resolver.ResolveAsync("broken.test", None);
        var invalid = await f.Resolver.ResolveAsync("bad..name", None);

        Assert.True(later.FromCache);
        Assert.Equal(TimeSpan.FromSeconds(3), later.TimeToLive);
        Assert.Equal(TimeSpan.Zero, invalid.TimeToLive);
    }

    [Fact]
    public async Task SERVFAIL_is_a_temporary_failure_cached_only_briefly()
    {
        using var f = new ResolverFixture(o => o.TemporaryFailureTtl = TimeSpan.FromSeconds(5));
        f.Server.AddMx("broken.test", 10, "mx.broken.test").SetServerFailure("broken.test");

        var first = await f.Resolver.ResolveAsync("broken.test", None);
        var second = await f.Resolver.ResolveAsync("broken.test", None);
        f.Time.Advance(TimeSpan.FromSeconds(6));
        var third = await f.Resolver.ResolveAsync("broken.test", None);

        Assert.Equal(MxStatus.TemporaryFailure, first.Status);
        Assert.Contains("SERVFAIL", first.Error, StringComparison.Ordinal);
        Assert.True(second.FromCache);
        Assert.Equal(TimeSpan.FromSeconds(5), first.TimeToLive);
        Assert.Equal(TimeSpan.FromSeconds(5), second.TimeToLive);
        Assert.Equal(MxStatus.TemporaryFailure, third.Status);
        Assert.False(third.FromCache);
        Assert.Equal(2, f.Server.QueryCount("broken.test", "MX"));
    }

    [Fact]
    public async Task Timeout_is_a_temporary_failure()
    {
        using var f = new ResolverFixture(o => o.Timeout = TimeSpan.FromMilliseconds(200));
        f.Server.AddMx("slow.test", 10, "mx.slow.test").SetDelay("slow.test", TimeSpan.FromSeconds(3));

        var answer = await f.Resolver.ResolveAsync("slow.test", None);

        Assert.Equal(MxStatus.TemporaryFailure, answer.Status);
        Assert.Contains("timed out", answer.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exchangers_without_addresses_are_a_temporary_failure()
    {
        using var f = new ResolverFixture();
        f.Server.AddMx("dangling.test", 10, "nowhere.dangling.test");

        var answer = await f.Resolver.ResolveAsync("dangling.test", None);

        Assert.Equal(MxStatus.TemporaryFailure, answer.Status);
    }

    [Fact]
    public async Task Exchangers_without_addresses_are_skipped()
    {
        using var f = new ResolverFixture();
        f.Server
            .AddMx("partial.test", 10, "nowhere.partial.test")
            .AddMx("partial.test", 20, "mx.partial.test")
            .AddAddress("mx.partial.test", "192.0.2.20");

        var answer = await f.Resolver.ResolveAsync("partial.test", None);

        Assert.Equal(MxStatus.Ok, answer.Status);
        Assert.Equal("mx.partial.test", Assert.Single(answer.Hosts).Name);
    }

    [Fact]
    public async Task Positive_answers_are_cached_for_the_smallest_TTL_involved()
    {
        using var f = new ResolverFixture();
        f.Server.AddMx("cached.test", 10, "mx.cached.test", ttl: 300).AddAddress("mx.cached.test", "192.0.2.30", ttl: 60);

        // TTLs read off the wire can arrive a second short (the test server counts them down in real time, as a cache
        // would): "inside" is checked a few seconds before the smallest TTL, not one (a CI flake), "after" just past it.
        await f.Resolver.ResolveAsync("cached.test", None);
        f.Time.Advance(TimeSpan.FromSeconds(55));
        var inside = await f.Resolver.ResolveAsync("cached.test", None);
        Assert.True(inside.FromCache);
        Assert.Equal(1, f.Server.QueryCount("cached.test", "MX"));
        Assert.Equal(1, f.Server.QueryCount("mx.cached.test", "A"));

        f.Time.Advance(TimeSpan.FromSeconds(6));
        var after = await f.Resolver.ResolveAsync("cached.test", None);
        Assert.False(after.FromCache);
        Assert.Equal(2, f.Server.QueryCount("cached.test", "MX"));
        Assert.Equal(2, f.Server.QueryCount("mx.cached.test", "A"));
    }

    [Fact]
    public async Task MinTtl_and_MaxTtl_clamp_the_cache_lifetime()
    {
        using var f = new ResolverFixture(o =>
        {
            o.MinTtl = TimeSpan.FromSeconds(30);
            o.MaxTtl = TimeSpan.FromSeconds(100);
        });
        f.Server.AddMx("short.test", 10, "mx.short.test", ttl: 1).AddAddress("mx.short.test", "192.0.2.40", ttl: 1);
        f.Server.AddMx("long.test", 10, "mx.long.test", ttl: 86400).AddAddress("mx.long.test", "192.0.2.41", ttl: 86400);

        await f.Resolver.ResolveAsync("short.test", None);
        await f.Resolver.ResolveAsync("long.test", None);
        f.Time.Advance(TimeSpan.FromSeconds(20));
        Assert.True((await f.Resolver.ResolveAsync("short.test", None)).FromCache);
        f.Time.Advance(TimeSpan.FromSeconds(81));
        Assert.False((await f.Resolver.ResolveAsync("long.test", None)).FromCache);
    }

    [Fact]
    public async Task Negative_answers_are_cached_for_the_SOA_minimum()
    {
        using var f = new ResolverFixture(o => o.NegativeTtl = TimeSpan.FromSeconds(300));
        f.Server.NegativeTtl = 120;

        // As above: the SOA's TTL can arrive a second short, so "inside" is a few seconds before 120 s, not one.
        await f.Resolver.ResolveAsync("gone.test", None);
        f.Time.Advance(TimeSpan.FromSeconds(115));
        var inside = await f.Resolver.ResolveAsync("gone.test", None);
        f.Time.Advance(TimeSpan.FromSeconds(6));
        var after = await f.Resolver.ResolveAsync("gone.test", None);

        Assert.Equal(MxStatus.NoSuchDomain, inside.Status);
        Assert.True(inside.FromCache);
        Assert.False(after.FromCache);
        Assert.Equal(2, f.Server.QueryCount("gone.test", "MX"));
    }

    [Fact]
    public async Task Negative_answers_without_SOA_use_the_configured_TTL()
    {
        using var f = new ResolverFixture(o => o.NegativeTtl = TimeSpan.FromSeconds(50));
        f.Server.OmitSoa = true;

        await f.Resolver.ResolveAsync("nosoa.test", None);
        f.Time.Advance(TimeSpan.FromSeconds(49));
        Assert.True((await f.Resolver.ResolveAsync("nosoa.test", None)).FromCache);
        f.Time.Advance(TimeSpan.FromSeconds(2));
        Assert.False((await f.Resolver.ResolveAsync("nosoa.test", None)).FromCache);
    }

    [Fact]
    public async Task Concurrent_lookups_of_one_domain_share_one_query()
    {
        using var f = new ResolverFixture(o => o.Timeout = TimeSpan.FromSeconds(5));
        f.Server
            .AddMx("busy.test", 10, "mx.busy.test")
            .AddAddress("mx.busy.test", "192.0.2.50")
            .SetDelay("busy.test", TimeSpan.FromMilliseconds(300));

        var answers = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => f.Resolver.ResolveAsync("busy.test", None)));

        Assert.All(answers, a => Assert.Equal(MxStatus.Ok, a.Status));
        Assert.Equal(1, f.Server.QueryCount("busy.test", "MX"));
    }

    [Fact]
    public async Task A_caller_giving_up_does_not_cancel_the_shared_lookup()
    {
        using var f = new ResolverFixture(o => o.Timeout = TimeSpan.FromSeconds(5));
        f.Server
            .AddMx("patient.test", 10, "mx.patient.test")
            .AddAddress("mx.patient.test", "192.0.2.51")
            .SetDelay("patient.test", TimeSpan.FromMilliseconds(300));
        using var impatient = new CancellationTokenSource();

        var first = f.Resolver.ResolveAsync("patient.test", impatient.Token);
        var second = f.Resolver.ResolveAsync("patient.test", None);
        await impatient.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        Assert.Equal(MxStatus.Ok, (await second).Status);
    }

    [Fact]
    public async Task Cache_size_is_bounded()
    {
        using var f = new ResolverFixture(o => o.MaxCacheEntries = 10);
        for (var i = 0; i < 15; i++)
        {
            f.Server.AddAddress($"d{i}.test", "192.0.2.60");
            await f.Resolver.ResolveAsync($"d{i}.test", None);
        }

        Assert.InRange(f.Resolver.CacheCount, 1, 10);
    }
}
