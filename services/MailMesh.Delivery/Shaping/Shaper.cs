using MailMesh.Contracts;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery.Shaping;

/// <summary>Why and until when shaping holds a delivery back (it goes back to Queue without counting as an attempt).</summary>
internal sealed record ShapingHold(DateTimeOffset Until, string Reason)
{
    /// <summary>
    /// Every recipient back to Queue, not attempted, until the hold ends: deferred with RFC 3463 4.4.5 (congestion, here
    /// MailMesh's own) and <see cref="RecipientResult.NotAttemptedUntil"/>, so Queue counts no attempt.
    /// </summary>
    public List<RecipientResult> Results(IReadOnlyList<DeliveryRecipient> recipients) =>
        [.. recipients.Select(r => SmtpDeliveryAgent.Result(r, DeliveryOutcome.Deferred, 451, "4.4.5", "Not attempted (traffic shaping): " + Reason) with
        {
            NotAttemptedUntil = Until,
        })];
}

/// <summary>
/// Traffic shaping for Delivery (docs/delivery.md, "Traffic shaping"): groups destinations into sites, holds deliveries
/// to suspended sites back, takes each message and each new connection from the site's budgets (shared by every replica),
/// and runs the automation rules on the destinations' replies.
/// </summary>
internal sealed class Shaper(
    IOptions<ShapingOptions> options,
    SiteResolver sites,
    ShapingBudget budget,
    SiteActionCache actions,
    ISiteActionStore store,
    TimeProvider time,
    ILogger<Shaper> logger)
{
    /// <summary>The source IP part of a budget key until a source IP is chosen (IP pools).</summary>
    public const string DefaultSourceIp = "default";

    private readonly ShapingOptions _options = options.Value;

    public bool Enabled => _options.Enabled;

    public ShapingBudget Budget => budget;

    public SiteActionCache Actions => actions;

    /// <summary>The site of a destination; null when shaping is off.</summary>
    public Site? Resolve(string domain, IReadOnlyList<MxHost> hosts) => _options.Enabled ? sites.Resolve(domain, hosts) : null;

    /// <summary>The site's limits now, from <paramref name="sourceIp"/>: its rules, lowered by live Limit actions.</summary>
    public ShapingLimits Limits(Site site, string sourceIp = DefaultSourceIp) =>
        actions.Lowered(site.Limits, site.Name, sourceIp, time.GetUtcNow());

    /// <summary>
    /// Before a message is sent to <paramref name="site"/>: a hold when the site is suspended (from this source IP) or its
    /// message rate has no token within <see cref="ShapingOptions.MaxRateWait"/>; otherwise waits for the token's time and
    /// returns null.
    /// </summary>
    public async Task<ShapingHold?> BeforeMessageAsync(Site site, string sourceIp, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (actions.Suspension(site.Name, sourceIp, now) is { } suspension)
        {
            var until = suspension.Until < now + _options.MaxHold ? suspension.Until : now + _options.MaxHold;
            return new ShapingHold(until, $"site {site.Name} is suspended until {suspension.Until:u} ({suspension.CreatedBy}: {suspension.Reason})");
        }

        if (Limits(site, sourceIp).MessageRate is { } rate)
        {
            var wait = await budget.TryTakeTokenAsync("msg|" + site.BudgetKey(sourceIp), rate, _options.MaxRateWait, cancellationToken);
            if (wait is null)
            {
                return new ShapingHold(now + _options.MaxRateWait, $"site {site.Name} message rate {rate} reached");
            }

            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait.Value, time, cancellationToken);
            }
        }

        return null;
    }

    /// <summary>
    /// Before a new connection to <paramref name="site"/>: a slot under its connection limit and a connection-rate token.
    /// While every slot is held it waits (up to <paramref name="slotTimeout"/>), on each turn first trying
    /// <paramref name="reuse"/> (an idle connection of this replica to the same address became free: the caller's lease
    /// has it now, and neither ticket nor hold is returned), then <paramref name="makeRoom"/> (close this replica's idle connections to the site's other addresses). The
    /// ticket (null without a connection limit) goes with the connection and is given back when it closes; a hold when
    /// neither slot nor token is to be had in time.
    /// </summary>
    public async Task<(ConnectionTicket? Ticket, ShapingHold? Hold)> BeforeConnectAsync(
        Site site, string sourceIp, TimeSpan slotTimeout, Func<Task<bool>>? reuse, Func<Task<bool>>? makeRoom, CancellationToken cancellationToken)
    {
        var limits = Limits(site, sourceIp);
        var key = site.BudgetKey(sourceIp);
        ConnectionTicket? ticket = null;
        if (limits.MaxConnections is { } limit)
        {
            var deadline = time.GetUtcNow() + slotTimeout;
            var pause = TimeSpan.FromMilliseconds(20);
            while ((ticket = await budget.TryTakeConnectionAsync("conn|" + key, limit, cancellationToken)) is null)
            {
                if (reuse is not null && await reuse())
                {
                    return (null, null);
                }

                if (makeRoom is not null && await makeRoom())
                {
                    continue;
                }

                if (time.GetUtcNow() + pause > deadline)
                {
                    return (null, new ShapingHold(time.GetUtcNow() + slotTimeout, $"site {site.Name} connection limit {limit} reached"));
                }

                await Task.Delay(pause, time, cancellationToken);
                pause = TimeSpan.FromMilliseconds(Math.Min(500, pause.TotalMilliseconds * 2));
            }
        }

        if (limits.ConnectionRate is { } rate)
        {
            TimeSpan? wait;
            try
            {
                wait = await budget.TryTakeTokenAsync("connrate|" + key, rate, _options.MaxRateWait, cancellationToken);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait.Value, time, cancellationToken);
                }
            }
            catch
            {
                if (ticket is not null)
                {
                    await ticket.DisposeAsync();
                }

                throw;
            }

            if (wait is null)
            {
                if (ticket is not null)
                {
                    await ticket.DisposeAsync();
                }

                return (null, new ShapingHold(time.GetUtcNow() + _options.MaxRateWait, $"site {site.Name} connection rate {rate} reached"));
            }
        }

        return (ticket, null);
    }

    /// <summary>
    /// Runs the automation rules over one attempt's results (each rule counts once per attempt): a rule whose patterns
    /// match a reply, as often as its trigger asks within its window, stores its action for every replica. Never throws.
    /// </summary>
    public async Task ObserveAsync(Site site, string sourceIp, IReadOnlyList<RecipientResult> results, CancellationToken cancellationToken)
    {
        if (sites.Rules.Automation.Count == 0)
        {
            return;
        }

        foreach (var rule in sites.Rules.Automation)
        {
            if (!rule.AppliesTo(site.Name))
            {
                continue;
            }

            var reply = results.FirstOrDefault(r => r.Outcome != DeliveryOutcome.Delivered
                && rule.Patterns.IsMatch(AutomationRule.Subject(r.ReplyCode, r.EnhancedCode, r.ReplyText)));
            if (reply is null)
            {
                continue;
            }

            try
            {
                await FireAsync(rule, site, sourceIp, reply, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                ShapingLog.RuleFailed(logger, ex, rule.Name, site.Name);
            }
        }
    }

    private async Task FireAsync(AutomationRule rule, Site site, string sourceIp, RecipientResult reply, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var scopeIp = rule.Action == AutomationAction.SuspendSourceIp ? sourceIp : null;
        var createdBy = "rule:" + rule.Name;

        // Already acting on this site (another replica, or an earlier reply): nothing more to do.
        if (actions.Live.Any(a => a.CreatedBy == createdBy && a.Until > now && string.Equals(a.Site, site.Name, StringComparison.OrdinalIgnoreCase)
            && a.SourceIp == scopeIp))
        {
            return;
        }

        if (rule.Threshold > 1)
        {
            var hits = await store.CountHitAsync($"{rule.Name}|{site.BudgetKey(sourceIp)}", now, rule.Window, cancellationToken);
            if (hits < rule.Threshold)
            {
                return;
            }
        }

        var text = AutomationRule.Subject(reply.ReplyCode, reply.EnhancedCode, reply.ReplyText);
        var action = new SiteAction
        {
            Id = Guid.NewGuid(),
            Site = site.Name,
            SourceIp = scopeIp,
            Kind = rule.Action == AutomationAction.Lower ? SiteActionKind.Limit : SiteActionKind.Suspend,
            MaxConnections = rule.MaxConnections,
            MessagesPerSecond = rule.MessageRate?.PerSecond,
            CreatedAt = now,
            Until = now + rule.Duration,
            Reason = text.Length > 300 ? text[..300] : text,
            CreatedBy = createdBy,
        };
        ShapingLog.RuleFired(logger, rule.Name, site.Name, sourceIp, rule.Action.ToString(), action.Until, text);
        await actions.AddAsync(action, cancellationToken);
    }
}
