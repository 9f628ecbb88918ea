using System.Net;
using System.Net.Sockets;
using MailMesh.Delivery.Pools;
using MailMesh.Smtp;
using MailMesh.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Delivery.Tests;

/// <summary>Issue 11: which pool a message gets, which address of it by weight, and warm-up caps (docs/delivery.md "IP pools").</summary>
public sealed class PoolSelectionTests
{
    private static readonly AddressFamily[] V4 = [AddressFamily.InterNetwork];

    private static DeliveryOptions Options(Action<DeliveryOptions>? configure = null)
    {
        var options = new DeliveryOptions { HeloName = "default.mailmesh.test" };
        options.Pools["transactional"] = new SourcePoolOptions
        {
            Addresses =
            [
                new SourceAddressOptions { Address = "127.0.0.21", EhloName = "t1.mailmesh.test", Weight = 3 },
                new SourceAddressOptions { Address = "127.0.0.22", EhloName = "t2.mailmesh.test", Weight = 1 },
            ],
        };
        options.Pools["bulk"] = new SourcePoolOptions { Addresses = [new SourceAddressOptions { Address = "127.0.0.23" }] };
        options.Pools["default"] = new SourcePoolOptions { Addresses = [new SourceAddressOptions { Address = "127.0.0.24" }] };
        options.PoolBySenderDomain["news.example"] = "bulk";
        configure?.Invoke(options);
        return options;
    }

    private static PoolSelector Selector(DeliveryOptions options, IPoolCounters? counters = null, Func<double>? sample = null, TimeProvider? time = null) =>
        new(options, counters ?? new InMemoryPoolCounters(), time ?? new FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 12, 0, 0, TimeSpan.Zero)),
            NullLogger<PoolSelector>.Instance, sample ?? (() => 0.0));

    [Fact]
    public void The_named_pool_wins_then_the_sender_domain_and_its_parents_then_the_default()
    {
        var selector = Selector(Options());

        Assert.Equal("transactional", selector.PoolFor("Transactional", "a@news.example"));
        Assert.Equal("bulk", selector.PoolFor(null, "a@news.example"));
        Assert.Equal("bulk", selector.PoolFor(null, "a@eu.mail.news.example"));
        Assert.Equal("default", selector.PoolFor(null, "a@other.example"));
        Assert.Equal("default", selector.PoolFor(null, string.Empty));

        // A pool the message names that Delivery does not have: chosen as if it named none.
        Assert.Equal("bulk", selector.PoolFor("nonexistent", "a@news.example"));
    }

    [Fact]
    public void Without_a_default_pool_unplaced_mail_has_no_pool()
    {
        var options = Options(o => o.Pools.Remove("default"));
        Assert.Null(Selector(options).PoolFor(null, "a@other.example"));
    }

    [Fact]
    public async Task Addresses_are_drawn_by_weight()
    {
        var samples = new Queue<double>([0.0, 0.74, 0.76, 0.99]);
        var selector = Selector(Options(), sample: () => samples.Dequeue());

        var drawn = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            var choice = await selector.ChooseAsync("transactional", "a@x.example", V4, CancellationToken.None);
            drawn.Add($"{choice.Source!.Address} {choice.Source.EhloName}");
        }

        // Weights 3:1: the first three quarters of [0, 1) go to 127.0.0.21.
        Assert.Equal(["127.0.0.21 t1.mailmesh.test", "127.0.0.21 t1.mailmesh.test", "127.0.0.22 t2.mailmesh.test", "127.0.0.22 t2.mailmesh.test"], drawn);
    }

    [Fact]
    public async Task Weights_hold_over_many_draws()
    {
        var selector = Selector(Options(), sample: new Random(7).NextDouble);
        var first = 0;
        for (var i = 0; i < 4000; i++)
        {
            var choice = await selector.ChooseAsync("transactional", "a@x.example", V4, CancellationToken.None);
            first += choice.Source!.Address.Equals(IPAddress.Parse("127.0.0.21")) ? 1 : 0;
        }

        Assert.InRange(first, 2800, 3200);
    }

    [Fact]
    public async Task An_address_without_an_EHLO_name_says_Delivery_HeloName_and_no_pool_means_no_source()
    {
        var selector = Selector(Options());
        var bulk = await selector.ChooseAsync(null, "a@news.example", V4, CancellationToken.None);
        Assert.Equal(("bulk", "default.mailmesh.test"), (bulk.Pool, bulk.Source!.EhloName));

        var none = Selector(new DeliveryOptions());
        Assert.False(none.IsEnabled);
        Assert.Same(PoolChoice.None, await none.ChooseAsync("bulk", "a@news.example", V4, CancellationToken.None));
    }

    [Fact]
    public async Task A_capped_address_is_skipped_for_the_others_and_all_capped_refuses_with_the_reason()
    {
        var options = Options(o =>
        {
            foreach (var address in o.Pools["transactional"].Addresses)
            {
                address.WarmUp = new WarmUpOptions { Start = new DateOnly(2026, 12, 2), Schedule = [2] };
            }
        });
        var counters = new InMemoryPoolCounters();
        var selector = Selector(options, counters, sample: () => 0.0);

        var chosen = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            chosen.Add((await selector.ChooseAsync("transactional", "a@x.example", V4, CancellationToken.None)).Source!.Address.ToString());
        }

        Assert.Equal(["127.0.0.21", "127.0.0.21", "127.0.0.22", "127.0.0.22"], chosen);
        var capped = await selector.ChooseAsync("transactional", "a@x.example", V4, CancellationToken.None);
        Assert.Null(capped.Source);
        Assert.Contains("pool warm-up cap reached", capped.Refusal, StringComparison.Ordinal);
        Assert.Equal(2, await counters.CountAsync("127.0.0.21", new DateOnly(2026, 12, 2), CancellationToken.None));

        // The warm-up schedule is over the next day: no cap, nothing counted.
        var nextDay = Selector(options, counters, time: new FakeTimeProvider(new DateTimeOffset(2026, 12, 3, 0, 0, 0, TimeSpan.Zero)));
        Assert.NotNull((await nextDay.ChooseAsync("transactional", "a@x.example", V4, CancellationToken.None)).Source);
        Assert.Equal(0, await counters.CountAsync("127.0.0.21", new DateOnly(2026, 12, 3), CancellationToken.None));
    }

    [Fact]
    public void The_warm_up_cap_grows_by_its_factor_and_ends_after_its_days()
    {
        var warmUp = new WarmUpOptions { Start = new DateOnly(2026, 12, 1), DailyLimit = 50, Factor = 1.5, Days = 3 };

        Assert.Equal(50, warmUp.CapOn(new DateOnly(2026, 11, 20)));
        Assert.Equal(50, warmUp.CapOn(new DateOnly(2026, 12, 1)));
        Assert.Equal(75, warmUp.CapOn(new DateOnly(2026, 12, 2)));
        Assert.Equal(112, warmUp.CapOn(new DateOnly(2026, 12, 3)));
        Assert.Null(warmUp.CapOn(new DateOnly(2026, 12, 4)));

        var table = new WarmUpOptions { Start = new DateOnly(2026, 12, 1), Schedule = [10, 0, 30] };
        Assert.Equal([10, 0, 30, null], Enumerable.Range(0, 4).Select(d => table.CapOn(new DateOnly(2026, 12, 1).AddDays(d))));
    }

    [Fact]
    public void A_pool_address_that_is_not_local_fails_start_up_naming_the_key()
    {
        var options = Options(o =>
        {
            o.Pools["bulk"].Addresses.Add(new SourceAddressOptions { Address = "192.0.2.10" });
            o.Pools["bulk"].Addresses.Add(new SourceAddressOptions { Address = "not-an-address" });
            o.Pools["bulk"].Addresses.Add(new SourceAddressOptions { Address = "127.0.0.25", WarmUp = new WarmUpOptions { Factor = 0.5 } });
            o.PoolBySenderDomain["x.example"] = "missing";
            o.DefaultPool = "missing";
        });
        options.ContentDirectory = Path.GetTempPath();

        var errors = options.Validate().ToList();

        Assert.Contains(errors, e => e.StartsWith("Delivery:Pools:bulk:Addresses:1:Address: 192.0.2.10 is not a local address", StringComparison.Ordinal));
        Assert.Contains("Delivery:Pools:bulk:Addresses:2:Address: required, an IPv4 or IPv6 address", errors);
        Assert.Contains(errors, e => e.StartsWith("Delivery:Pools:bulk:Addresses:3:WarmUp:Start: required", StringComparison.Ordinal));
        Assert.Contains("Delivery:Pools:bulk:Addresses:3:WarmUp:Factor: must be at least 1", errors);
        Assert.Contains("Delivery:PoolBySenderDomain:x.example: 'missing' is not a pool in Delivery:Pools", errors);
        Assert.Contains("Delivery:DefaultPool: 'missing' is not a pool in Delivery:Pools", errors);
        Assert.DoesNotContain(errors, e => e.Contains("Addresses:0", StringComparison.Ordinal));
    }

    [Fact]
    public void The_pool_header_is_found_unfolded_and_removed_with_its_continuation_lines()
    {
        var content = "Received: from x\r\nX-MailMesh-Pool: bulk\r\nSubject: hi\r\nx-mailmesh-pool:\r\n  other\r\n\r\nX-MailMesh-Pool: body\r\n"u8;

        Assert.Equal("bulk", PoolHeader.Find(content));
        Assert.True(PoolHeader.IsPresent(content));
        Assert.Equal("Received: from x\r\nSubject: hi\r\n\r\nX-MailMesh-Pool: body\r\n", System.Text.Encoding.ASCII.GetString(PoolHeader.Remove(content)));
        Assert.False(PoolHeader.IsPresent("Subject: x\r\n\r\nX-MailMesh-Pool: body\r\n"u8));
        Assert.Equal("other", PoolHeader.Find("X-MailMesh-Pool:\r\n  other\r\n\r\n"u8));
        Assert.False(PoolHeader.IsValidName("no spaces"));
        Assert.True(PoolHeader.IsValidName("bulk-2.eu_west"));
    }
}
