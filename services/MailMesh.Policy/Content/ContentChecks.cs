using System.Diagnostics;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Policy.Spf;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Policy.Content;

/// <summary>What the content checks of one message concluded (<see cref="ContentChecks.CheckAsync"/>).</summary>
public sealed record ContentVerdict
{
    /// <summary>No check applied: the message is stored as it came, untouched (no header added or removed).</summary>
    public static ContentVerdict NotChecked { get; } = new();

    /// <summary>At least one check applied: the message gets <see cref="Headers"/> and loses earlier fields for which
    /// <see cref="ContentChecks.IsForged"/> is true.</summary>
    public bool Checked { get; init; }

    /// <summary>The refusal to give instead of 250 (the first check that refused, or 451 4.7.1 for a check that failed
    /// or ran out of time); null to accept.</summary>
    public PolicyDecision? Refusal { get; init; }

    /// <summary>Header fields to insert right under this server's Received header, each ending in CRLF: the one
    /// Authentication-Results, the checks' own fields, and the junk mark when <see cref="Junk"/>.</summary>
    public string Headers { get; init; } = string.Empty;

    /// <summary>Deliver to the recipients' \Junk folder (a mailbox domain) instead of INBOX.</summary>
    public bool Junk { get; init; }

    /// <summary>Why, for logs: the refusing or junking checks' reasons.</summary>
    public string? Reason { get; init; }
}

/// <summary>
/// Every registered <see cref="IContentCheck"/> that applies to a message, in <see cref="IContentCheck.Order"/>, at the
/// end of DATA (Ingress's MessageAcceptor, SMTP and HTTP): bounded all together by <see cref="ContentCheckOptions.Timeout"/>,
/// the first refusal wins, and a check that throws or runs out of time is a 451 4.7.1 (never an acceptance, ARCHITECTURE.md
/// "never accept unchecked"). The method results of all checks, with the transaction's SPF result, become ONE
/// Authentication-Results header (RFC 8601) with this server's authserv-id.
/// </summary>
/// <remarks>
/// With no check registered, or none that applies, nothing is read and nothing changes: the message is stored as
/// before, at no cost. The SPF result is taken from <see cref="SpfChecker"/>, which cached it at RCPT for this client
/// and domain, so it costs no second evaluation.
/// </remarks>
public sealed class ContentChecks
{
    /// <summary>The header that marks a message for the \Junk folder; removed from what a client sends.</summary>
    public const string JunkHeaderName = JunkHeader.Name;

    private readonly IContentCheck[] _checks;
    private readonly HashSet<string>.AlternateLookup<ReadOnlySpan<char>> _stamped;
    private readonly ContentCheckOptions _options;
    private readonly SpfOptions _spf;
    private readonly SpfChecker _spfChecker;
    private readonly RelayRules _relay;
    private readonly TimeProvider _time;
    private readonly ILogger<ContentChecks> _logger;

    internal ContentChecks(
        IEnumerable<IContentCheck> checks,
        IOptions<ContentCheckOptions> options,
        IOptions<AuthServIdOptions> authServId,
        IOptions<SpfOptions> spf,
        SpfChecker spfChecker,
        RelayRules relay,
        TimeProvider time,
        ILogger<ContentChecks> logger)
    {
        _checks = [.. checks.OrderBy(c => c.Order)];
        _stamped = new HashSet<string>(_checks.SelectMany(c => c.StampedFields), StringComparer.OrdinalIgnoreCase).GetAlternateLookup<ReadOnlySpan<char>>();
        _options = options.Value;
        AuthServId = authServId.Value.AuthServId!;
        _spf = spf.Value;
        _spfChecker = spfChecker;
        _relay = relay;
        _time = time;
        _logger = logger;
    }

    /// <summary>The authserv-id stamped in Authentication-Results (<c>Policy:AuthServId</c>).</summary>
    public string AuthServId { get; }

    /// <summary>No check is registered: nothing to ask, ever.</summary>
    public bool IsEmpty => _checks.Length == 0;

    /// <summary>The client may submit (Policy:RelayNetworks or authenticated): <see cref="ContentCheckRequest.IsSubmitter"/>.</summary>
    public bool IsSubmitter(string clientAddress, string? authenticatedUser) =>
        authenticatedUser is not null || _relay.IsRelayClient(clientAddress);

    /// <summary>True when some check applies to the request (the caller then prepares the content for reading).</summary>
    public bool AppliesTo(ContentCheckRequest request) => Array.Exists(_checks, c => c.AppliesTo(request));

    /// <summary>
    /// A field a client may not send because it would speak for this server: an Authentication-Results with our
    /// authserv-id (RFC 8601 §5), the junk mark, or a field a registered check stamps (<see cref="IContentCheck.StampedFields"/>:
    /// X-Spam-Status, X-Virus-Status). <paramref name="value"/> is the field body after the colon.
    /// </summary>
    public bool IsForged(ReadOnlySpan<char> name, ReadOnlySpan<char> value) =>
        name.Equals(JunkHeaderName, StringComparison.OrdinalIgnoreCase)
        || _stamped.Contains(name)
        || (name.Equals(AuthenticationResultsHeader.FieldName, StringComparison.OrdinalIgnoreCase) && AuthenticationResultsHeader.IsFrom(value, AuthServId));

    /// <summary>Runs the checks that apply, in order; see the class remarks.</summary>
    public async Task<ContentVerdict> CheckAsync(ContentCheckRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var applicable = _checks.Where(c => c.AppliesTo(request)).ToList();
        if (applicable.Count == 0)
        {
            return ContentVerdict.NotChecked;
        }

        using var activity = PolicyTelemetry.Source.StartActivity("policy.content", ActivityKind.Internal);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        var started = _time.GetTimestamp();
        var results = new List<string>();
        var headers = new StringBuilder();
        var junk = false;
        var reasons = new List<string>();

        if (_spf.Enabled && !request.IsSubmitter)
        {
            try
            {
                // Cached at RCPT for this client and domain: no second evaluation.
                var spf = await _spfChecker.CheckAsync(request.ClientAddress, request.Sender, request.ClientHelo, timeout.Token)
                    .WaitAsync(Remaining(started), _time, cancellationToken);
                results.Add(SpfResult(spf, request));
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                ContentLog.CheckFailed(_logger, "spf", ex);
                results.Add("spf=temperror");
            }
        }

        foreach (var check in applicable)
        {
            ContentCheckResult result;
            try
            {
                // Bounded all together: a check that ignores its token is given up when the whole budget is spent.
                result = await check.CheckAsync(request, timeout.Token).WaitAsync(Remaining(started), _time, cancellationToken);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                // ARCHITECTURE.md "never accept unchecked": a check that failed or ran out of time is a tempfail.
                ContentLog.CheckFailed(_logger, check.Name, ex);
                activity?.SetTag("mailmesh.content.failed", check.Name);
                return new ContentVerdict
                {
                    Checked = true,
                    Refusal = Refusal(451, "4.7.1", "Message content could not be checked, try again later"),
                    Reason = check.Name + " failed",
                };
            }

            if (result.Refusal is { Accepted: false } refusal)
            {
                activity?.SetTag("mailmesh.content.refused", check.Name);
                return new ContentVerdict { Checked = true, Refusal = refusal, Reason = result.Reason ?? check.Name };
            }

            results.AddRange(result.AuthenticationResults);
            foreach (var header in result.Headers)
            {
                headers.Append(header.EndsWith("\r\n", StringComparison.Ordinal) ? header : header + "\r\n");
            }

            if (result.Junk)
            {
                junk = true;
                reasons.Add(result.Reason ?? check.Name);
            }
        }

        var reason = reasons.Count == 0 ? null : string.Join(", ", reasons);
        var all = new StringBuilder(AuthenticationResultsHeader.Format(AuthServId, results)).Append(headers);
        if (junk)
        {
            all.Append(JunkHeaderName).Append(": ").Append(Sanitize(reason!)).Append("\r\n");
        }

        activity?.SetTag("mailmesh.content.junk", junk);
        return new ContentVerdict { Checked = true, Headers = all.ToString(), Junk = junk, Reason = reason };
    }

    /// <summary>What is left of <see cref="ContentCheckOptions.Timeout"/> (zero when spent: WaitAsync then times out at once).</summary>
    private TimeSpan Remaining(long started)
    {
        var left = _options.Timeout - _time.GetElapsedTime(started);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    /// <summary>RFC 8601 §2.7.2: spf=result smtp.mailfrom=sender (smtp.helo=name for the null sender).</summary>
    private static string SpfResult(SpfEvaluation evaluation, ContentCheckRequest request)
    {
        var keyword = ReceivedSpfHeader.Keyword(evaluation.Result);
        return request.Sender.Length > 0
            ? $"spf={keyword} smtp.mailfrom={Value(request.Sender)}"
            : $"spf={keyword} smtp.helo={Value(request.ClientHelo ?? string.Empty)}";
    }

    /// <summary>A property value: as is when it is a plain token or address, quoted otherwise (RFC 8601 §2.2 pvalue).</summary>
    internal static string Value(string text)
    {
        if (text.Length > 0 && text.All(c => c is > ' ' and < '\x7f' and not '"' and not '\\' and not '(' and not ')' and not ';' and not ','))
        {
            return text;
        }

        return ReceivedSpfHeader.Quote(text);
    }

    private static string Sanitize(string text) => new([.. text.Select(c => char.IsControl(c) ? ' ' : c)]);

    private static PolicyDecision Refusal(int code, string enhanced, string reason) =>
        new() { Accepted = false, ReplyCode = code, EnhancedCode = enhanced, Reason = reason };
}
