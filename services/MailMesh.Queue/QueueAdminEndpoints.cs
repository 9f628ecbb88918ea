using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Serialization;
using MailMesh.Contracts;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Smtp;
using MailMesh.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace MailMesh.Queue;

/// <summary>
/// The Queue's part of the admin API v1 (issue 12): message search with keyset pagination, a message's whole life,
/// its raw content, actions on one message or on every message matching a filter, the queue summary, the audit trail,
/// and the configured admin keys. The web UI and the <c>mailmesh</c> CLI use exactly these.
/// </summary>
public static class QueueAdminEndpoints
{
    internal const int DefaultPage = 50;
    internal const int MaxReasonLength = 200;

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>
    /// Maps under <c>/api/v1/admin</c>: <c>GET messages</c>, <c>GET messages/{id}</c>, <c>GET messages/{id}/raw</c>,
    /// <c>POST messages/{id}/{action}</c>, <c>POST messages/actions</c>, <c>GET queue/summary</c>, <c>GET audit</c>
    /// and the keys (<see cref="KeyAdminEndpoints"/>). See docs/openapi/admin-v1.yaml.
    /// </summary>
    public static IEndpointRouteBuilder MapQueueAdminEndpoints(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api/v1/admin").WithTags("Queue");
        api.MapGet("/messages", ListAsync).WithName("AdminListMessages").RequireAdminScope(AdminScopes.MessagesRead);
        api.MapGet("/messages/{id}", GetAsync).WithName("AdminGetMessage").RequireAdminScope(AdminScopes.MessagesRead);
        api.MapGet("/messages/{id}/raw", RawAsync).WithName("AdminGetMessageRaw").RequireAdminScope(AdminScopes.MessagesContent);
        api.MapPost("/messages/actions", BulkAsync).WithName("AdminMessagesAction").RequireAdminScope(AdminScopes.MessagesWrite);
        api.MapPost("/messages/{id}/{action}", OneAsync).WithName("AdminMessageAction").RequireAdminScope(AdminScopes.MessagesWrite);
        api.MapGet("/queue/summary", SummaryAsync).WithName("AdminQueueSummary").RequireAdminScope(AdminScopes.QueueRead);
        api.MapGet("/audit", AuditAsync).WithName("AdminAudit").RequireAdminScope(AdminScopes.AuditRead);
        api.MapKeyAdminEndpoints();
        endpoints.MapShapingAdminEndpoints();
        Webhooks.WebhookAdminEndpoints.MapWebhookAdminEndpoints(api);
        endpoints.MapStatsAdminEndpoints();
        return endpoints;
    }

    internal static async Task<IResult> ListAsync(
        HttpRequest request, ISpoolAdmin admin, CancellationToken cancellationToken, string? cursor = null, int? limit = null)
    {
        if (!TryReadFilter(request.Query, out var filter, out var problem))
        {
            return problem;
        }

        var take = limit ?? DefaultPage;
        if (take is < 1 or > SpoolAdminLimits.MaxPage)
        {
            return BadRequest("Invalid limit", $"limit must be between 1 and {SpoolAdminLimits.MaxPage} (was {take}).");
        }

        MessageCursor? after = null;
        if (cursor is not null)
        {
            if (!MessageCursor.TryDecode(cursor, out var decoded))
            {
                return BadRequest("Invalid cursor", "cursor must be the 'next' value of a previous page, unchanged.");
            }

            after = decoded;
        }

        var page = await admin.ListMessagesAsync(new MessageListQuery { Filter = filter, Limit = take, After = after }, cancellationToken);
        return TypedResults.Json(
            new MessageListView([.. page.Items.Select(MessageListItem.Of)], page.Next?.Encode()), Json);
    }

    internal static async Task<IResult> GetAsync(string id, ISpool spool, CancellationToken cancellationToken)
    {
        if (!TryParseId(id, out var messageId, out var problem))
        {
            return problem;
        }

        var status = await spool.GetStatusAsync(messageId, cancellationToken);
        var message = status is null ? null : await spool.GetMessageAsync(messageId, cancellationToken);
        if (status is null || message is null)
        {
            return NotFound(messageId);
        }

        return TypedResults.Json(MessageDetail.Of(status, message), Json);
    }

    internal static async Task<IResult> RawAsync(string id, ISpool spool, HttpContext context, CancellationToken cancellationToken)
    {
        if (!TryParseId(id, out var messageId, out var problem))
        {
            return problem;
        }

        // Read into a spill-free buffer first only to learn whether the message exists; then stream. A message is
        // written to the response as it comes off the store (CopyContentAsync never holds it whole).
        if (await spool.GetStatusesAsync([messageId], cancellationToken) is not { Count: 1 })
        {
            return NotFound(messageId);
        }

        context.Response.ContentType = "message/rfc822";
        context.Response.Headers.ContentDisposition = $"attachment; filename=\"{messageId}.eml\"";
        await spool.CopyContentAsync(messageId, context.Response.Body, cancellationToken);
        return TypedResults.Empty;
    }

    internal static async Task<IResult> OneAsync(
        string id, string action, ActionBody? body, ClaimsPrincipal user, AdminActions actions, CancellationToken cancellationToken)
    {
        if (!TryParseId(id, out var messageId, out var problem))
        {
            return problem;
        }

        if (!TryParseAction(action, out var parsed))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown action",
                detail: $"'{Truncate(action)}' is not an action (retry, hold, release, bounce, delete).");
        }

        if (!TryReason(body?.Reason, out var reason, out problem))
        {
            return problem;
        }

        var result = await actions.ApplyAsync(parsed, [messageId], new MessageFilter(), user.Identity?.Name ?? "?", messageId.ToString(), reason, cancellationToken);
        return TypedResults.Json(ActionResultView.Of(result), Json);
    }

    internal static async Task<IResult> BulkAsync(BulkActionBody body, ClaimsPrincipal user, AdminActions actions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (!TryParseAction(body.Action ?? string.Empty, out var action))
        {
            return BadRequest("Invalid action", "action must be one of retry, hold, release, bounce, delete.");
        }

        if (!TryReason(body.Reason, out var reason, out var problem))
        {
            return problem;
        }

        if (body.Ids is { Count: > SpoolAdminLimits.MaxIds })
        {
            return BadRequest("Too many ids", $"At most {SpoolAdminLimits.MaxIds} ids per request; use a filter for more.");
        }

        var ids = new List<Guid>();
        foreach (var text in body.Ids ?? [])
        {
            if (!Guid.TryParse(text, out var parsed))
            {
                return BadRequest("Malformed message id", $"'{Truncate(text)}' is not a message id.");
            }

            ids.Add(parsed);
        }

        if (!TryReadFilter(body.Filter ?? new FilterBody(), out var filter, out problem))
        {
            return problem;
        }

        // Acting on every message in the spool must be asked for explicitly.
        if (body.Ids is null && filter.IsEmpty && body.All != true)
        {
            return BadRequest("No target", "Give ids, a filter, or \"all\": true to act on every message.");
        }

        var target = JsonSerializer.Serialize(new { ids = body.Ids, filter = body.Filter, all = body.All }, Json);
        var result = await actions.ApplyAsync(action, body.Ids is null ? null : ids, filter, user.Identity?.Name ?? "?", target, reason, cancellationToken);
        return TypedResults.Json(ActionResultView.Of(result), Json);
    }

    internal static async Task<IResult> SummaryAsync(ISpoolAdmin admin, TimeProvider time, CancellationToken cancellationToken, int? domains = null)
    {
        var take = domains ?? 50;
        if (take is < 1 or > 1000)
        {
            return BadRequest("Invalid domains", $"domains must be between 1 and 1000 (was {take}).");
        }

        var summary = await admin.SummarizeAsync(time.GetUtcNow(), take, cancellationToken);
        return TypedResults.Json(QueueSummaryView.Of(summary), Json);
    }

    internal static async Task<IResult> AuditAsync(ISpoolAdmin admin, CancellationToken cancellationToken, long? before = null, int? limit = null)
    {
        var take = limit ?? DefaultPage;
        if (take is < 1 or > SpoolAdminLimits.MaxPage)
        {
            return BadRequest("Invalid limit", $"limit must be between 1 and {SpoolAdminLimits.MaxPage} (was {take}).");
        }

        var entries = await admin.ListAuditAsync(before, take, cancellationToken);
        return TypedResults.Json(new AuditView(entries, entries.Count == take ? entries[^1].Id : null), Json);
    }

    /// <summary>Reads the filter members from query parameters (list) or a JSON body (bulk actions).</summary>
    private static bool TryReadFilter(IQueryCollection query, out MessageFilter filter, out IResult problem) =>
        TryReadFilter(new FilterBody
        {
            Sender = query["sender"].FirstOrDefault(),
            Recipient = query["recipient"].FirstOrDefault(),
            Domain = query["domain"].FirstOrDefault(),
            State = query["state"].Count == 0 ? null : string.Join(',', query["state"].ToArray()),
            Class = query["class"].Count == 0 ? null : string.Join(',', query["class"].ToArray()),
            ReceivedFrom = query["from"].FirstOrDefault(),
            ReceivedTo = query["to"].FirstOrDefault(),
        }, out filter, out problem);

    private static bool TryReadFilter(FilterBody body, out MessageFilter filter, out IResult problem)
    {
        filter = new MessageFilter();
        problem = null!;
        if (body.Sender is { } sender)
        {
            if (sender.Length > 320 || sender.Any(char.IsControl))
            {
                problem = BadRequest("Invalid sender", "sender must be an address (or empty for the null sender).");
                return false;
            }

            filter = filter with { Sender = sender.Trim().Trim('<', '>') };
        }

        if (body.Recipient is { } recipient)
        {
            if (recipient.Length > 320 || !recipient.Contains('@', StringComparison.Ordinal) || recipient.Any(char.IsControl))
            {
                problem = BadRequest("Invalid recipient", "recipient must be an address (local-part@domain).");
                return false;
            }

            filter = filter with { Recipient = recipient.Trim() };
        }

        if (body.Domain is { } domain)
        {
            if (!NormalizedAddress.TryNormalizeDomain(domain.Trim(), out var normalized))
            {
                problem = BadRequest("Invalid domain", $"'{Truncate(domain)}' is not a domain name.");
                return false;
            }

            filter = filter with { Domain = normalized };
        }

        if (body.State is { } states)
        {
            var parsed = new List<RecipientState>();
            foreach (var name in states.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!TryParseState(name, out var state))
                {
                    problem = BadRequest("Invalid state", $"'{Truncate(name)}' is not a state (queued, in_flight, deferred, held, delivered, bounced, expired, suppressed).");
                    return false;
                }

                parsed.Add(state);
            }

            filter = filter with { States = parsed };
        }

        if (!TryTime(body.ReceivedFrom, "from", out var from, out problem) || !TryTime(body.ReceivedTo, "to", out var to, out problem))
        {
            return false;
        }

        filter = filter with { ReceivedFrom = from, ReceivedTo = to };

        if (body.Class is { } classes)
        {
            var parsed = new List<string>();
            foreach (var name in classes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                // The spool stores a class by its enum name; numbers are not names.
                if (!Enum.TryParse<BounceClass>(name, ignoreCase: true, out var bounceClass) || !Enum.IsDefined(bounceClass)
                    || char.IsDigit(name[0]))
                {
                    problem = BadRequest("Invalid class", $"'{Truncate(name)}' is not a bounce class ({string.Join(", ", Enum.GetNames<BounceClass>())}).");
                    return false;
                }

                parsed.Add(bounceClass.ToString());
            }

            filter = filter with { BounceClasses = parsed };
        }

        return true;
    }

    private static bool TryTime(string? text, string name, out DateTimeOffset? value, out IResult problem)
    {
        value = null;
        problem = null!;
        if (text is null)
        {
            return true;
        }

        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
        {
            value = parsed;
            return true;
        }

        problem = BadRequest($"Invalid {name}", $"{name} must be an RFC 3339 time such as 2030-01-02T03:04:05Z.");
        return false;
    }

    internal static bool TryParseState(string name, out RecipientState state)
    {
        foreach (var candidate in Enum.GetValues<RecipientState>())
        {
            if (string.Equals(QueueMetrics.StateName(candidate), name, StringComparison.OrdinalIgnoreCase)
                || string.Equals(candidate.ToString(), name, StringComparison.OrdinalIgnoreCase))
            {
                state = candidate;
                return true;
            }
        }

        state = default;
        return false;
    }

    private static bool TryParseAction(string text, out AdminAction action) =>
        Enum.TryParse(text, ignoreCase: true, out action) && Enum.IsDefined(action) && !char.IsDigit(text.FirstOrDefault());

    private static bool TryReason(string? reason, out string? value, out IResult problem)
    {
        value = string.IsNullOrWhiteSpace(reason) ? null : reason.Trim();
        problem = null!;
        if (value is not null && (value.Length > MaxReasonLength || value.Any(char.IsControl)))
        {
            problem = BadRequest("Invalid reason", $"reason must be at most {MaxReasonLength} characters on one line.");
            return false;
        }

        return true;
    }

    private static bool TryParseId(string id, out Guid messageId, out IResult problem)
    {
        problem = null!;
        if (Guid.TryParse(id, out messageId))
        {
            return true;
        }

        problem = BadRequest("Malformed message id", $"'{Truncate(id)}' is not a message id (a UUID).");
        return false;
    }

    private static ProblemHttpResult NotFound(Guid id) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown message",
            detail: $"No message {id} is in the spool: it was never accepted, or it completed and was purged.");

    private static ProblemHttpResult BadRequest(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: title, detail: detail);

    private static string Truncate(string value) => value.Length <= 64 ? value : value[..64] + "…";

    /// <summary>Body of POST messages/{id}/{action} (optional): the bounce reason.</summary>
    public sealed record ActionBody(string? Reason);

    /// <summary>The filter of a bulk action; the same members as the list's query parameters.</summary>
    public sealed record FilterBody
    {
        public string? Sender { get; init; }
        public string? Recipient { get; init; }
        public string? Domain { get; init; }

        /// <summary>Comma-separated states.</summary>
        public string? State { get; init; }

        /// <summary>Comma-separated bounce classes of the recipient's last attempt (docs/delivery.md).</summary>
        public string? Class { get; init; }

        [JsonPropertyName("from")]
        public string? ReceivedFrom { get; init; }

        [JsonPropertyName("to")]
        public string? ReceivedTo { get; init; }
    }

    /// <summary>Body of POST messages/actions.</summary>
    public sealed record BulkActionBody(string? Action, IReadOnlyList<string>? Ids, FilterBody? Filter, bool? All, string? Reason);

    /// <summary>A page of messages; <c>next</c> is the cursor of the following page (absent on the last).</summary>
    public sealed record MessageListView(IReadOnlyList<MessageListItem> Items, string? Next);

    public sealed record MessageListItem(
        Guid Id, string Sender, DateTimeOffset ReceivedAt, long Size, string Origin, DateTimeOffset? CompletedAt,
        int Recipients, string FirstRecipient, IReadOnlyDictionary<string, int> States, DateTimeOffset? NextAttemptAt)
    {
        internal static MessageListItem Of(MessageSummary m) => new(
            m.Id, m.Sender, m.ReceivedAt, m.Size, m.Origin.ToString().ToLowerInvariant(), m.CompletedAt, m.RecipientCount, m.FirstRecipient,
            m.States.ToDictionary(s => QueueMetrics.StateName(s.Key), s => s.Value), m.NextAttemptAt);
    }

    public sealed record ActionResultView(string Action, int Changed, int SkippedInFlight, long AuditId, int DsnsQueued)
    {
        internal static ActionResultView Of(AdminActionOutcome outcome) => new(
            outcome.Result.Action.ToString().ToLowerInvariant(), outcome.Result.Changed, outcome.Result.SkippedInFlight, outcome.Result.AuditId, outcome.DsnsQueued);
    }

    public sealed record QueueSummaryView(
        DateTimeOffset At, IReadOnlyList<string> AgeBuckets, QueueSummaryRowView Total, IReadOnlyList<QueueSummaryRowView> Domains, int DomainCount)
    {
        internal static QueueSummaryView Of(QueueSummary summary)
        {
            var buckets = SpoolAdminLimits.AgeBucketMinutes;
            var names = buckets.Select((m, i) => $"{(i == 0 ? 0 : buckets[i - 1]).ToString(CultureInfo.InvariantCulture)}-{m.ToString(CultureInfo.InvariantCulture)}m")
                .Append($"{buckets[^1].ToString(CultureInfo.InvariantCulture)}m+").ToList();
            return new(summary.At, names, QueueSummaryRowView.Of(summary.Total, summary.At), [.. summary.Domains.Select(d => QueueSummaryRowView.Of(d, summary.At))], summary.DomainCount);
        }
    }

    public sealed record QueueSummaryRowView(
        string Domain, long Total, IReadOnlyList<long> ByAge, IReadOnlyDictionary<string, long> ByState, DateTimeOffset? OldestReceivedAt, double OldestAgeSeconds)
    {
        internal static QueueSummaryRowView Of(QueueSummaryRow row, DateTimeOffset now) => new(
            row.Domain, row.Total, row.ByAge, row.ByState.ToDictionary(s => QueueMetrics.StateName(s.Key), s => s.Value),
            row.Total == 0 ? null : row.OldestReceivedAt, row.Total == 0 ? 0 : Math.Max(0, (now - row.OldestReceivedAt).TotalSeconds));
    }

    public sealed record AuditView(IReadOnlyList<AdminAuditEntry> Items, long? Next);

    /// <summary>An admin key as listed: name and scopes; <c>source</c> says where it is managed.</summary>
    /// <summary>A message's whole life (GET messages/{id}).</summary>
    public sealed record MessageDetail(
        Guid Id, string Sender, DateTimeOffset ReceivedAt, long Size, string Origin, DateTimeOffset? CompletedAt,
        string? ClientAddress, string? ClientHelo, string? AuthenticatedUser, string BodyType, bool SmtpUtf8, bool RequireTls,
        string? EnvelopeId, string? Ret, string? TraceParent, string? TraceId,
        IReadOnlyList<HeaderView> Headers, IReadOnlyList<RecipientDetail> Recipients, IReadOnlyList<TimelineEvent> Events)
    {
        internal static MessageDetail Of(MessageStatus status, StoredMessage message)
        {
            var events = new List<TimelineEvent> { new(status.ReceivedAt, "received", null, $"from {(message.ClientAddress ?? "?")} ({message.Origin.ToString().ToLowerInvariant()})") };
            foreach (var r in status.Recipients)
            {
                events.AddRange(r.History.Select(a => new TimelineEvent(a.AttemptedAt, QueueMetrics.StateName(a.State), r.Address,
                    string.Join(' ', new[] { a.ReplyCode?.ToString(CultureInfo.InvariantCulture), a.EnhancedCode, a.ReplyText, a.RemoteHost is null ? null : $"({a.RemoteHost})" }.Where(p => p is not null)))));
            }

            if (status.CompletedAt is { } completed)
            {
                events.Add(new TimelineEvent(completed, "completed", null, null));
            }

            return new MessageDetail(
                status.Id, status.Sender, status.ReceivedAt, status.Size, status.Origin.ToString().ToLowerInvariant(), status.CompletedAt,
                message.ClientAddress, message.ClientHelo, message.AuthenticatedUser, message.BodyType.ToString(), message.SmtpUtf8, message.RequireTls,
                message.EnvelopeId, message.Ret, message.TraceParent, TraceIdOf(message.TraceParent),
                HeaderView.Parse(message.Content.Span),
                [.. status.Recipients.Select(RecipientDetail.Of)],
                [.. events.OrderBy(e => e.At)]);
        }

        // W3C Trace Context: version-traceid-parentid-flags.
        private static string? TraceIdOf(string? traceParent) =>
            traceParent?.Split('-') is [_, var traceId, _, _] && traceId.Length == 32 ? traceId : null;
    }

    public sealed record HeaderView(string Name, string Value)
    {
        private const int MaxHeaderBytes = 256 * 1024;

        /// <summary>The header section (RFC 5322 §2.2: up to the first empty line), unfolded, in order.</summary>
        internal static IReadOnlyList<HeaderView> Parse(ReadOnlySpan<byte> content)
        {
            var text = System.Text.Encoding.UTF8.GetString(content[..Math.Min(content.Length, MaxHeaderBytes)]);
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            var section = end < 0 ? text : text[..end];
            var headers = new List<HeaderView>();
            foreach (var line in section.Split("\r\n"))
            {
                if (line.Length > 0 && (line[0] == ' ' || line[0] == '\t') && headers.Count > 0)
                {
                    headers[^1] = headers[^1] with { Value = headers[^1].Value + " " + line.Trim() };
                    continue;
                }

                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon > 0)
                {
                    headers.Add(new HeaderView(line[..colon], line[(colon + 1)..].Trim()));
                }
            }

            return headers;
        }
    }

    /// <summary>A recipient with every attempt: when, the state it led to, the remote host, its reply and the session's TLS.</summary>
    public sealed record RecipientDetail(
        string Address, string Domain, string State, int Attempts, DateTimeOffset? NextAttemptAt, int? LastReplyCode,
        string? LastEnhancedCode, string? LastReplyText, string? LastRemoteHost, string? Notify, string? OriginalRecipient,
        IReadOnlyList<AttemptView> History, string? LastBounceClass)
    {
        internal static RecipientDetail Of(RecipientStatus r) => new(
            r.Address, r.Domain, QueueMetrics.StateName(r.State), r.Attempts, r.NextAttemptAt, r.LastReplyCode, r.LastEnhancedCode,
            r.LastReplyText, r.LastRemoteHost, r.Notify, r.OriginalRecipient,
            [.. r.History.Select(a => new AttemptView(a.AttemptedAt, QueueMetrics.StateName(a.State), a.ReplyCode, a.EnhancedCode, a.ReplyText, a.RemoteHost, a.BounceClass,
                a.TlsProtocol is null ? null : new AttemptTlsView(a.TlsProtocol, a.TlsCipher, a.TlsVerification is not (null or "none"), a.TlsVerification ?? "none")))],
            r.LastBounceClass);
    }

    public sealed record AttemptView(
        DateTimeOffset AttemptedAt, string State, int? ReplyCode, string? EnhancedCode, string? ReplyText, string? RemoteHost, string? BounceClass,
        AttemptTlsView? Tls = null);

    /// <summary>
    /// The TLS of an attempt's session: protocol ("none" in clear text), cipher suite, and whether and how the certificate
    /// was verified (dane, mta-sts, webpki, or none). Absent when no connection answered or the attempt predates schema 21.
    /// </summary>
    public sealed record AttemptTlsView(string Protocol, string? Cipher, bool Verified, string Verification);

    public sealed record TimelineEvent(DateTimeOffset At, string Type, string? Recipient, string? Detail);
}

/// <summary>What an admin action did, with the DSNs it queued.</summary>
internal sealed record AdminActionOutcome(AdminActionResult Result, int DsnsQueued);

/// <summary>
/// Applies admin actions: the store's transition, then what follows it in the Queue: a failure DSN to the sender for
/// each message whose recipients were bounced (the existing DSN path, so a repeated request cannot queue a second one),
/// a Bounced event per recipient, and a nudge to the scheduler after retry and release.
/// </summary>
internal sealed partial class AdminActions(
    ISpoolAdmin admin,
    DsnWriter dsn,
    QueueEvents events,
    SchedulerSignal scheduler,
    TimeProvider time,
    ILogger<AdminActions> logger)
{
    public async Task<AdminActionOutcome> ApplyAsync(
        AdminAction action, IReadOnlyList<Guid>? ids, MessageFilter filter, string actor, string target, string? reason, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var text = action == AdminAction.Bounce ? reason ?? $"bounced by an administrator ({actor})" : reason;
        var result = await admin.ApplyAsync(
            new AdminActionRequest { Action = action, MessageIds = ids, Filter = filter, Actor = actor, Target = target, Reason = text, Now = now },
            cancellationToken);
        ActionApplied(logger, actor, action.ToString().ToLowerInvariant(), result.Changed, result.SkippedInFlight, result.AuditId);

        if (action is AdminAction.Retry or AdminAction.Release && result.Changed > 0)
        {
            scheduler.Poke();
        }

        var dsns = 0;
        foreach (var message in result.Bounced.GroupBy(b => b.MessageId))
        {
            // RFC 3461 §4.1: a failure DSN only for recipients whose NOTIFY asks for one (absent means FAILURE).
            var entries = message
                .Where(b => DsnRequest.ParseNotify(b.Notify).HasFlag(NotifyConditions.Failure))
                .Select(b => new DsnRecipient
                {
                    Address = b.Address,
                    OriginalRecipient = b.OriginalRecipient,
                    Action = DsnAction.Failed,
                    // No Remote-MTA nor Diagnostic-Code: no remote server refused it (RFC 3464 §2.3.5, §2.3.6).
                    Status = "5.0.0",
                    LastAttemptAt = now,
                })
                .ToList();
            await events.PublishAsync(
                [.. message.Select(b => new MessageEvent { MessageId = b.MessageId, Type = MessageEventType.Bounced, Recipient = b.Address, Text = text, Timestamp = now })],
                cancellationToken);

            if (entries.Count > 0
                && await dsn.QueueAsync(message.Key, DsnRequest.DeterministicId(message.Key, "admin:" + result.AuditId.ToString(CultureInfo.InvariantCulture)), "failure", entries, cancellationToken))
            {
                dsns++;
            }
        }

        return new AdminActionOutcome(result, dsns);
    }

    [LoggerMessage(3120, LogLevel.Information, "Admin {Actor} applied {Action}: {Changed} changed, {Skipped} in flight left alone (audit {AuditId})")]
    private static partial void ActionApplied(ILogger logger, string actor, string action, int changed, int skipped, long auditId);
}
