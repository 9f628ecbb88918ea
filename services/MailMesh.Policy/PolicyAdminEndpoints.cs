using System.Globalization;
using System.Text;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;

namespace MailMesh.Policy;

/// <summary>
/// The Policy service's part of the admin API v1 (issue 12): the suppression list with keyset pagination and filters,
/// add and remove, and CSV import and export.
/// </summary>
public static class PolicyAdminEndpoints
{
    internal const int MaxImportLines = 1_000_000;
    internal const int ExportPage = 1000;

    /// <summary>The CSV columns of export (and of import, whose header row is optional).</summary>
    internal const string CsvHeader = "address,reason,created_at,source,expires_at";

    /// <summary>
    /// Maps <c>GET /api/v1/admin/suppressions</c> (<c>?prefix=&amp;domain=&amp;source=&amp;cursor=&amp;limit=</c>),
    /// <c>PUT|DELETE /api/v1/admin/suppressions/{address}</c>, <c>POST /api/v1/admin/suppressions/import</c> (text/csv)
    /// and <c>GET /api/v1/admin/suppressions/export</c> (text/csv).
    /// </summary>
    public static IEndpointRouteBuilder MapPolicyAdminEndpoints(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api/v1/admin/suppressions").WithTags("Policy");
        api.MapGet("/", ListAsync).WithName("AdminListSuppressions").RequireAdminScope(AdminScopes.SuppressionsRead);
        api.MapGet("/export", ExportAsync).WithName("AdminExportSuppressions").RequireAdminScope(AdminScopes.SuppressionsRead);
        api.MapPost("/import", ImportAsync).WithName("AdminImportSuppressions").RequireAdminScope(AdminScopes.SuppressionsWrite);
        api.MapPut("/{address}", PolicyEndpoints.PutAsync).WithName("AdminPutSuppression").RequireAdminScope(AdminScopes.SuppressionsWrite);
        api.MapDelete("/{address}", PolicyEndpoints.DeleteAsync).WithName("AdminDeleteSuppression").RequireAdminScope(AdminScopes.SuppressionsWrite);
        return endpoints;
    }

    internal static async Task<IResult> ListAsync(
        ISuppressionAdmin admin,
        CancellationToken cancellationToken,
        string? prefix = null,
        string? domain = null,
        string? source = null,
        string? cursor = null,
        int? limit = null)
    {
        var take = limit ?? PolicyEndpoints.DefaultListLimit;
        if (take is < 1 or > PolicyEndpoints.MaxListLimit)
        {
            return BadRequest("Invalid limit", $"limit must be between 1 and {PolicyEndpoints.MaxListLimit} (was {take}).");
        }

        if (source is not null && !SuppressionSources.All.Contains(source, StringComparer.Ordinal))
        {
            return BadRequest("Invalid source", $"source must be one of {string.Join(", ", SuppressionSources.All)}.");
        }

        if (prefix is { Length: > 254 } || domain is { Length: > 253 } || cursor is { Length: > 254 })
        {
            return BadRequest("Invalid filter", "prefix, domain and cursor are at most an address long.");
        }

        var items = await admin.ListAsync(new SuppressionQuery { Prefix = prefix, Domain = domain, Source = source, After = cursor, Limit = take }, cancellationToken);
        return TypedResults.Ok(new SuppressionPage(items, items.Count == take ? items[^1].Address : null));
    }

    internal static async Task ExportAsync(HttpContext context, ISuppressionAdmin admin, CancellationToken cancellationToken)
    {
        context.Response.ContentType = "text/csv; charset=utf-8";
        context.Response.Headers.ContentDisposition = "attachment; filename=\"suppressions.csv\"";
        await using var writer = new StreamWriter(context.Response.Body, new UTF8Encoding(false), leaveOpen: true);
        await writer.WriteAsync(CsvHeader + "\r\n");
        string? after = null;
        while (true)
        {
            var page = await admin.ListAsync(new SuppressionQuery { After = after, Limit = ExportPage }, cancellationToken);
            foreach (var s in page)
            {
                await writer.WriteAsync(string.Join(',',
                    Csv.Quote(s.Address), Csv.Quote(s.Reason), s.CreatedAt.ToString("O", CultureInfo.InvariantCulture), Csv.Quote(s.Source),
                    s.ExpiresAt?.ToString("O", CultureInfo.InvariantCulture) ?? string.Empty) + "\r\n");
            }

            await writer.FlushAsync(cancellationToken);
            if (page.Count < ExportPage)
            {
                break;
            }

            after = page[^1].Address;
        }
    }

    /// <summary>
    /// Adds (or updates) one suppression per CSV line: <c>address[,reason[,created_at,source,expires_at]]</c>, as export
    /// writes them; a header row is skipped. Bad lines are reported by number and the rest imported, so the same file
    /// can be fixed and imported again (adding an address twice changes nothing more).
    /// </summary>
    internal static async Task<IResult> ImportAsync(HttpRequest request, IPolicyStore store, TimeProvider time, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(request.Body, Encoding.UTF8);
        var now = time.GetUtcNow();
        var added = 0;
        var errors = new List<ImportError>();
        var lineNumber = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            lineNumber++;
            if (lineNumber > MaxImportLines)
            {
                errors.Add(new ImportError(lineNumber, $"more than {MaxImportLines} lines; the rest was not read"));
                break;
            }

            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("address", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            var fields = Csv.Split(line);
            if (fields is null || !PolicyEndpoints.TryNormalize(fields[0], out var address, out _))
            {
                errors.Add(new ImportError(lineNumber, "not an address (or a malformed CSV line)"));
                continue;
            }

            var reason = fields.Count > 1 && !string.IsNullOrWhiteSpace(fields[1]) ? fields[1].Trim() : "imported by an administrator";
            if (reason.Length > PolicyEndpoints.MaxReasonLength || reason.Any(char.IsControl))
            {
                errors.Add(new ImportError(lineNumber, $"reason longer than {PolicyEndpoints.MaxReasonLength} characters or not on one line"));
                continue;
            }

            var source = fields.Count > 3 && SuppressionSources.All.Contains(fields[3], StringComparer.Ordinal) ? fields[3] : SuppressionSources.Api;
            DateTimeOffset? expiresAt = null;
            if (fields.Count > 4 && fields[4].Length > 0)
            {
                if (!DateTimeOffset.TryParse(fields[4], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed))
                {
                    errors.Add(new ImportError(lineNumber, "expires_at is not a time"));
                    continue;
                }

                if (parsed <= now)
                {
                    continue; // already expired: nothing to suppress
                }

                expiresAt = parsed;
            }

            await store.AddSuppressionAsync(new Suppression { Address = address, Reason = reason, CreatedAt = now, Source = source, ExpiresAt = expiresAt }, cancellationToken);
            added++;
        }

        loggers.CreateLogger(typeof(PolicyAdminEndpoints).FullName!).SuppressionsImported(added, errors.Count);
        return TypedResults.Ok(new ImportResult(added, errors.Take(100).ToList(), errors.Count));
    }

    private static IResult BadRequest(string title, string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: title, detail: detail);

    /// <summary>A page of suppressions; <c>next</c> is the cursor of the following page (absent when this one is the last).</summary>
    public sealed record SuppressionPage(IReadOnlyList<Suppression> Items, string? Next);

    /// <summary>What an import did: lines added, and the first bad lines with why.</summary>
    public sealed record ImportResult(int Added, IReadOnlyList<ImportError> Errors, int ErrorCount);

    /// <summary>A line of an import that was not added.</summary>
    public sealed record ImportError(int Line, string Error);
}

/// <summary>RFC 4180 CSV fields: quoted when they hold a comma, quote or line break.</summary>
internal static class Csv
{
    public static string Quote(string value) =>
        value.AsSpan().IndexOfAny(",\"\r\n") < 0 ? value : "\"" + value.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>The fields of one line, or null when a quoted field is not closed.</summary>
    public static List<string>? Split(string line)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    field.Append(c);
                }
            }
            else if (c == '"' && field.Length == 0)
            {
                quoted = true;
            }
            else if (c == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
            }
            else
            {
                field.Append(c);
            }
        }

        if (quoted)
        {
            return null;
        }

        fields.Add(field.ToString());
        return fields;
    }
}
