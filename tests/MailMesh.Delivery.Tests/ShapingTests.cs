using MailMesh.Contracts;
using MailMesh.Delivery.Shaping;
using MailMesh.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Delivery.Tests;

/// <summary>Traffic shaping's parts: site grouping, the rules files, automation rule matching and triggers, the token bucket.</summary>
public sealed class ShapingTests
{
    private static readonly ShapingRules Shipped = Load();

    private static ShapingRules Load(params string[] operatorFiles)
    {
        var streams = operatorFiles.Select(json => (Stream)new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json))).ToList();
        streams.Add(ShapingRules.OpenShipped());
        try
        {
            return ShapingRules.Load(streams);
        }
        finally
        {
            streams.ForEach(s => s.Dispose());
        }
    }

    private static List<MxHost> Mx(params string[] names) =>
        [.. names.Select((name, i) => new MxHost { Name = name, Preference = (i + 1) * 10, Addresses = ["192.0.2.1"] })];

    [Theory]
    [InlineData("gmail.com", "gmail-smtp-in.l.google.com", "google")]
    [InlineData("example-workspace.com", "aspmx.l.google.com.", "google")]
    [InlineData("outlook.com", "outlook-com.olc.protection.outlook.com", "microsoft")]
    [InlineData("contoso.com", "contoso-com.mail.protection.outlook.com", "microsoft")]
    [InlineData("yahoo.com", "mta5.am0.yahoodns.net", "yahoo")]
    [InlineData("aol.com", "mx-aol.mail.gm0.yahoodns.net", "yahoo")]
    [InlineData("icloud.com", "mx01.mail.icloud.com", "apple")]
    public void Domains_hosted_by_a_provider_share_its_site(string domain, string mx, string site)
    {
        var resolved = new SiteResolver(Shipped).Resolve(domain, Mx(mx));
        Assert.Equal(site, resolved.Name);
        Assert.NotNull(resolved.Limits.MaxConnections);
    }

    [Fact]
    public void A_suffix_pattern_matches_only_names_under_it()
    {
        Assert.True(MxPattern.Matches("*.google.com", "aspmx.l.google.com"));
        Assert.True(MxPattern.Matches("*.google.com", "ASPMX.L.GOOGLE.COM."));
        Assert.False(MxPattern.Matches("*.google.com", "google.com"));
        Assert.False(MxPattern.Matches("*.google.com", "notgoogle.com"));
        Assert.False(MxPattern.Matches("*.google.com", "google.com.evil.test"));
        Assert.True(MxPattern.Matches("mx.example.net", "MX.example.net"));
        Assert.False(MxPattern.Matches("mx.example.net", "a.mx.example.net"));
    }

    [Fact]
    public void Domains_on_the_same_exchangers_share_one_site_named_by_the_sorted_MX_set()
    {
        var resolver = new SiteResolver(Shipped);
        var a = resolver.Resolve("one.test", Mx("mx2.hoster.test", "MX1.hoster.test."));
        var b = resolver.Resolve("two.test", Mx("mx1.hoster.test", "mx2.hoster.test", "mx1.hoster.test"));
        var c = resolver.Resolve("three.test", Mx("mx1.other.test"));
        Assert.Equal("mx1.hoster.test,mx2.hoster.test", a.Name);
        Assert.Equal(a.Name, b.Name);
        Assert.Equal(a.BudgetKey(Shaper.DefaultSourceIp), b.BudgetKey(Shaper.DefaultSourceIp));
        Assert.NotEqual(a.Name, c.Name);
        Assert.False(a.Limits.IsBudgeted);
    }

    [Fact]
    public void A_domain_override_gets_its_own_site_with_its_limits_over_the_providers()
    {
        var rules = Load("""
            {
              "domains": {
                "bigcustomer.test": { "maxConnections": 3, "messageRate": "120/min" },
                "grouped.test": { "site": "partners", "maxDeliveriesPerConnection": 7 }
              },
              "providers": [ { "site": "hoster", "mx": [ "*.hoster.test" ], "maxConnections": 9, "idleTimeout": "00:00:05" } ]
            }
            """);
        var resolver = new SiteResolver(rules);
        var big = resolver.Resolve("bigcustomer.test", Mx("mx.hoster.test"));
        Assert.Equal("bigcustomer.test", big.Name);
        Assert.Equal(3, big.Limits.MaxConnections);
        Assert.Equal(2.0, big.Limits.MessageRate!.Value.PerSecond);
        Assert.Equal(TimeSpan.FromSeconds(5), big.Limits.IdleTimeout);

        var grouped = resolver.Resolve("grouped.test", Mx("mx.elsewhere.test"));
        Assert.Equal("partners", grouped.Name);
        Assert.Equal(7, grouped.Limits.MaxDeliveriesPerConnection);

        var hosted = resolver.Resolve("small.test", Mx("mx.hoster.test"));
        Assert.Equal("hoster", hosted.Name);
        Assert.Equal(9, hosted.Limits.MaxConnections);
    }

    [Fact]
    public void Operator_providers_are_matched_before_the_shipped_ones()
    {
        var rules = Load("""{ "providers": [ { "site": "my-google", "mx": [ "*.google.com" ], "maxConnections": 2 } ] }""");
        var site = new SiteResolver(rules).Resolve("gmail.com", Mx("gmail-smtp-in.l.google.com"));
        Assert.Equal("my-google", site.Name);
        Assert.Equal(2, site.Limits.MaxConnections);
    }

    [Theory]
    [InlineData("10/s", 10, 10)]
    [InlineData("600/min", 10, 10)]
    [InlineData("30/min", 0.5, 1)]
    [InlineData("3600/h", 1, 1)]
    [InlineData("86400/d", 1, 1)]
    public void Rates_parse_to_per_second_with_a_one_second_burst(string text, double perSecond, double burst)
    {
        var rate = Rate.Parse(text);
        Assert.Equal(perSecond, rate.PerSecond, 6);
        Assert.Equal(burst, rate.Burst);
    }

    [Theory]
    [InlineData("""{ "providers": [ { "site": "x", "mx": [] } ] }""", "providers[0]: 'mx' must list")]
    [InlineData("""{ "providers": [ { "site": "x", "mx": [ "*.*.test" ] } ] }""", "is not an MX host pattern")]
    [InlineData("""{ "default": { "messageRate": "10/week" } }""", "the unit must be")]
    [InlineData("""{ "default": { "maxConnections": 0 } }""", "'maxConnections' must be a whole number")]
    [InlineData("""{ "default": { "tls": "Maybe" } }""", "tls 'Maybe'")]
    [InlineData("""{ "automation": [ { "name": "r", "patterns": [ "(a" ], "action": "suspend", "duration": "00:10:00" } ] }""", "not usable regular expressions")]
    [InlineData("""{ "automation": [ { "name": "r", "patterns": [ "a" ], "action": "pause", "duration": "00:10:00" } ] }""", "action 'pause'")]
    [InlineData("""{ "automation": [ { "name": "r", "patterns": [ "a" ], "action": "lower", "duration": "00:10:00" } ] }""", "needs maxConnections or messageRate")]
    [InlineData("""{ "automation": [ { "name": "r", "patterns": [ "a" ], "action": "suspend", "duration": "00:10:00", "trigger": "two/h" } ] }""", "trigger 'two/h'")]
    public void A_bad_shaping_file_is_refused_naming_the_place(string json, string expected)
    {
        var error = Assert.Throws<InvalidDataException>(() => ShapingFile.Read(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json))));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_operator_file_stops_start_up_naming_the_key()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, """{ "default": { "maxConnections": -1 } }""");
            var errors = new ShapingOptions { Files = [path] }.Validate().ToList();
            Assert.Contains(errors, e => e.StartsWith("Delivery:Shaping:Files:0: cannot use shaping file", StringComparison.Ordinal));
            Assert.Contains("Delivery:Shaping:ExpectedReplicas", new ShapingOptions { ExpectedReplicas = 0 }.Validate().Single(), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("google", 421, "4.7.28", "[192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.", "gmail-rate-limited")]
    [InlineData("google", 421, "4.7.0", "Try again later, closing connection. (EHLO) d9443c01a7336-2", "gmail-try-again-later")]
    [InlineData("microsoft", 451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://aka.ms/postmaster", "microsoft-rate-limited")]
    [InlineData("microsoft", 550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", "microsoft-s3150")]
    [InlineData("yahoo", 421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", "yahoo-tss04")]
    [InlineData("mx.any.test", 421, "4.7.0", "Too many concurrent connections from your IP", "too-many-connections")]
    public void The_shipped_rules_match_the_well_known_throttling_replies(string site, int code, string enhanced, string text, string rule)
    {
        var matching = Shipped.Automation.Where(r => r.AppliesTo(site) && r.Patterns.IsMatch(AutomationRule.Subject(code, enhanced, text))).Select(r => r.Name).ToList();
        Assert.Contains(rule, matching);
    }

    [Theory]
    [InlineData("google", 452, "4.2.2", "The email account that you tried to reach is over quota.")]
    [InlineData("google", 550, "5.1.1", "The email account that you tried to reach does not exist.")]
    [InlineData("microsoft", 421, "4.7.28", "unusual rate of unsolicited mail")]
    public void The_shipped_rules_leave_other_replies_and_other_sites_alone(string site, int code, string enhanced, string text)
    {
        Assert.DoesNotContain(Shipped.Automation, r => r.AppliesTo(site) && r.Patterns.IsMatch(AutomationRule.Subject(code, enhanced, text)));
    }

    [Fact]
    public void The_token_bucket_gives_its_burst_then_one_token_per_interval_and_refuses_waits_beyond_the_limit()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero));
        var budget = new LocalBudget(time);
        var rate = new Rate(2, 2); // 2 per second, burst 2
        var maxWait = TimeSpan.FromSeconds(1);

        Assert.Equal(TimeSpan.Zero, budget.TryTakeToken("k", rate, maxWait));
        Assert.Equal(TimeSpan.Zero, budget.TryTakeToken("k", rate, maxWait));

        // Spent: the next tokens are reserved half a second apart, up to a second ahead.
        Assert.Equal(TimeSpan.FromSeconds(0.5), budget.TryTakeToken("k", rate, maxWait));
        Assert.Equal(TimeSpan.FromSeconds(1), budget.TryTakeToken("k", rate, maxWait));
        Assert.Null(budget.TryTakeToken("k", rate, maxWait));

        // Other keys have their own buckets.
        Assert.Equal(TimeSpan.Zero, budget.TryTakeToken("other", rate, maxWait));

        // After the debt is paid and a full refill, the burst is back, and never more than the burst.
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(TimeSpan.Zero, budget.TryTakeToken("k", rate, maxWait));
        Assert.Equal(TimeSpan.Zero, budget.TryTakeToken("k", rate, maxWait));
        Assert.Equal(TimeSpan.FromSeconds(0.5), budget.TryTakeToken("k", rate, maxWait));
    }

    [Fact]
    public void The_token_bucket_never_lets_more_through_than_burst_plus_rate_times_time()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 0, 0, 0, TimeSpan.Zero));
        var budget = new LocalBudget(time);
        var rate = new Rate(5, 5);
        var granted = new List<DateTimeOffset>();
        for (var step = 0; step < 400; step++)
        {
            // Eager takers every 10 ms; each records when its token is due.
            for (var taker = 0; taker < 3; taker++)
            {
                if (budget.TryTakeToken("k", rate, TimeSpan.FromMilliseconds(300)) is { } wait)
                {
                    granted.Add(time.GetUtcNow() + wait);
                }
            }

            time.Advance(TimeSpan.FromMilliseconds(10));
        }

        granted.Sort();
        for (var i = 0; i < granted.Count; i++)
        {
            var within = granted.Skip(i).TakeWhile(t => t - granted[i] < TimeSpan.FromSeconds(1)).Count();
            Assert.True(within <= 5 + 5, $"{within} tokens within one second from {granted[i]:O}");
        }

        Assert.InRange(granted.Count, (4 * 5) - 1, (4 * 5) + 5 + 1);
    }

    [Fact]
    public void Connection_slots_are_counted_against_the_limit_per_key()
    {
        var budget = new LocalBudget(TimeProvider.System);
        Assert.True(budget.TryTakeConnection("a", 2));
        Assert.True(budget.TryTakeConnection("a", 2));
        Assert.False(budget.TryTakeConnection("a", 2));
        Assert.True(budget.TryTakeConnection("b", 2));
        budget.ReleaseConnection("a");
        Assert.True(budget.TryTakeConnection("a", 2));
        Assert.Equal(2, budget.Connections("a"));
    }

    [Fact]
    public async Task A_rule_with_a_threshold_suspends_the_site_on_the_second_match_and_the_suspension_ends_on_time()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 10, 0, 0, TimeSpan.Zero));
        var store = new InMemorySiteActionStore();
        var options = Options.Create(new ShapingOptions { IncludeShippedRules = true });
        var resolver = new SiteResolver(Shipped);
        await using var budget = new ShapingBudget(null, options, time, NullLogger<ShapingBudget>.Instance);
        var actions = new SiteActionCache(store, options, time, NullLogger<SiteActionCache>.Instance);
        var shaper = new Shaper(options, resolver, budget, actions, store, time, NullLogger<Shaper>.Instance);
        var site = shaper.Resolve("gmail.com", Mx("gmail-smtp-in.l.google.com"))!;
        var throttled = new RecipientResult
        {
            RecipientId = 1,
            Address = "a@gmail.com",
            Outcome = DeliveryOutcome.Deferred,
            ReplyCode = 421,
            EnhancedCode = "4.7.28",
            ReplyText = "Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
            Stage = ReplyStage.Data,
        };

        await shaper.ObserveAsync(site, Shaper.DefaultSourceIp, [throttled], CancellationToken.None);
        Assert.Empty(store.All);
        Assert.Null(await shaper.BeforeMessageAsync(site, Shaper.DefaultSourceIp, CancellationToken.None));

        await shaper.ObserveAsync(site, Shaper.DefaultSourceIp, [throttled], CancellationToken.None);
        var suspension = Assert.Single(store.All);
        Assert.Equal(("google", "default", SiteActionKind.Suspend, "rule:gmail-rate-limited"), (suspension.Site, suspension.SourceIp, suspension.Kind, suspension.CreatedBy));
        Assert.Equal(time.GetUtcNow() + TimeSpan.FromMinutes(30), suspension.Until);

        // Held on this replica at once (Queue holds the work for at most MaxHold, 15 minutes, then it looks again);
        // another source IP is not suspended by a source-IP rule.
        var hold = await shaper.BeforeMessageAsync(site, Shaper.DefaultSourceIp, CancellationToken.None);
        Assert.NotNull(hold);
        Assert.Equal(time.GetUtcNow() + TimeSpan.FromMinutes(15), hold.Until);
        Assert.Null(await shaper.BeforeMessageAsync(site, "192.0.2.9", CancellationToken.None));

        // Another replica learns it from the store.
        var other = new SiteActionCache(store, options, time, NullLogger<SiteActionCache>.Instance);
        Assert.True(await other.RefreshAsync(CancellationToken.None));
        Assert.NotNull(other.Suspension("google", Shaper.DefaultSourceIp, time.GetUtcNow()));

        // It ends by itself.
        time.Advance(TimeSpan.FromMinutes(31));
        Assert.Null(await shaper.BeforeMessageAsync(site, Shaper.DefaultSourceIp, CancellationToken.None));
    }

    [Fact]
    public async Task A_lower_rule_lowers_the_sites_limits_for_its_duration()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 10, 0, 0, TimeSpan.Zero));
        var store = new InMemorySiteActionStore();
        var options = Options.Create(new ShapingOptions());
        var rules = Load("""
            { "automation": [ { "name": "slow-down", "sites": [ "mx.slow.test" ], "patterns": [ "slow down" ], "action": "lower",
                                "maxConnections": 1, "messageRate": "6/min", "duration": "00:10:00" } ] }
            """);
        await using var budget = new ShapingBudget(null, options, time, NullLogger<ShapingBudget>.Instance);
        var actions = new SiteActionCache(store, options, time, NullLogger<SiteActionCache>.Instance);
        var shaper = new Shaper(options, new SiteResolver(rules), budget, actions, store, time, NullLogger<Shaper>.Instance);
        var site = shaper.Resolve("slow.test", Mx("mx.slow.test"))!;
        Assert.Null(shaper.Limits(site).MaxConnections);

        await shaper.ObserveAsync(site, Shaper.DefaultSourceIp, [new RecipientResult
        {
            RecipientId = 1, Address = "a@slow.test", Outcome = DeliveryOutcome.Deferred, ReplyCode = 421, EnhancedCode = "4.3.2", ReplyText = "please slow down",
        }], CancellationToken.None);
        Assert.Equal(1, shaper.Limits(site).MaxConnections);
        Assert.Equal(0.1, shaper.Limits(site).MessageRate!.Value.PerSecond, 6);

        time.Advance(TimeSpan.FromMinutes(11));
        Assert.Null(shaper.Limits(site).MaxConnections);
    }
}
