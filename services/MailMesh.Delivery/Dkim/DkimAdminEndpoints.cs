using System.Text.Json;
using MailMesh.ServiceDefaults.Security;

namespace MailMesh.Delivery.Dkim;

/// <summary>
/// Delivery's part of the admin API: the configured DKIM keys with the DNS record each needs published (what
/// <c>dkim-records</c> prints), for the admin UI's DKIM page. Public keys only: a private key never leaves the process.
/// </summary>
public static class DkimAdminEndpoints
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Maps <c>GET /api/v1/admin/dkim/keys</c> (scope <c>dkim:read</c>, docs/openapi/admin-v1.yaml).</summary>
    public static IEndpointRouteBuilder MapDkimAdminEndpoints(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGroup("/api/v1/admin/dkim").WithTags("Delivery")
            .MapGet("/keys", List).WithName("AdminListDkimKeys").RequireAdminScope(AdminScopes.DkimRead);
        return endpoints;
    }

    internal static IResult List(DkimKeyRing keys) =>
        TypedResults.Json(new DkimKeyList([.. keys.All.Select(DkimKeyView.Of)]), Json);

    /// <summary>The configured keys, in configuration order.</summary>
    public sealed record DkimKeyList(IReadOnlyList<DkimKeyView> Items);

    /// <summary>
    /// One key: its d= and s=, algorithm, whether it signs (Sign=false: published ahead of a rotation), and the TXT record
    /// to publish (name and value, RFC 6376 §3.6.2.1), with the value also as a zone file line.
    /// </summary>
    public sealed record DkimKeyView(string Domain, string Selector, string Algorithm, bool Signing, string RecordName, string RecordValue, string ZoneLine)
    {
        internal static DkimKeyView Of(DkimSigningKey key)
        {
            var current = key.Current;
            var value = current.RecordText();
            return new(key.Domain, key.Selector, current.AlgorithmName, key.Options.Sign, $"{key.Selector}._domainkey.{key.Domain}", value,
                DkimPrivateKey.ZoneLine(key.Selector, key.Domain, value));
        }
    }
}
