using System.Text.Json;
using System.Text.Json.Serialization;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace MailMesh.Queue;

/// <summary>The Queue's HTTP API: "where is my message" and queue depth.</summary>
public static class QueueEndpoints
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>
    /// Maps <c>GET /api/v1/messages/{id}</c> (the message and each recipient's state, attempts and last reply) and
    /// <c>GET /api/v1/queue</c> (recipients by state). Both need an admin API key, with <c>messages:read</c> and
    /// <c>queue:read</c>.
    /// </summary>
    public static IEndpointRouteBuilder MapQueueEndpoints(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var api = endpoints.MapGroup("/api/v1").WithTags("Queue");
        api.MapGet("/messages/{id}", GetMessageAsync).WithName("GetMessageStatus").RequireAdminScope(AdminScopes.MessagesRead);
        api.MapGet("/queue", GetQueueAsync).WithName("GetQueueDepth").RequireAdminScope(AdminScopes.QueueRead);
        return endpoints;
    }

    internal static async Task<Results<JsonHttpResult<MessageStatus>, ProblemHttpResult>> GetMessageAsync(
        string id, ISpool spool, CancellationToken cancellationToken)
    {
        if (!Guid.TryParse(id, out var messageId))
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Malformed message id",
                detail: $"'{Truncate(id)}' is not a message id (a UUID such as 0b5e6c1e-8f2a-4c55-9d43-2f1c6a7b9e01).");
        }

        var status = await spool.GetStatusAsync(messageId, cancellationToken);
        return status is null
            ? TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown message",
                detail: $"No message {messageId} is in the spool: it was never accepted, or it completed and was purged.")
            : TypedResults.Json(status, Json);
    }

    internal static async Task<JsonHttpResult<QueueDepth>> GetQueueAsync(ISpool spool, CancellationToken cancellationToken)
    {
        var counts = await spool.CountByStateAsync(cancellationToken);
        var byState = Enum.GetValues<RecipientState>().ToDictionary(QueueMetrics.StateName, s => counts.GetValueOrDefault(s));
        return TypedResults.Json(new QueueDepth(byState, counts.Values.Sum()), Json);
    }

    private static string Truncate(string value) => value.Length <= 64 ? value : value[..64] + "…";

    /// <summary>Recipients in the spool by state (snake_case state names, as in metrics).</summary>
    public sealed record QueueDepth(IReadOnlyDictionary<string, long> Recipients, long Total);
}
