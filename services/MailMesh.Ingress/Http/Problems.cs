using System.Globalization;
using System.Text.Json.Serialization;
using MailMesh.Smtp;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace MailMesh.Ingress.Http;

/// <summary>
/// RFC 9457 problem details (application/problem+json) of the submission API. Every problem has a stable "type"
/// (urn:mailmesh:problem:*, listed in docs/http-api.md) that clients branch on; "detail" says what exactly is wrong.
/// </summary>
internal static class Problems
{
    public const string TypePrefix = "urn:mailmesh:problem:";

    public static ProblemHttpResult Unauthorized(string detail) =>
        Create(StatusCodes.Status401Unauthorized, "unauthorized", "Authentication required", detail);

    public static ProblemHttpResult UnsupportedMediaType(string detail) =>
        Create(StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "Unsupported media type", detail);

    public static ProblemHttpResult MalformedJson(string detail) =>
        Create(StatusCodes.Status400BadRequest, "malformed-json", "Malformed JSON", detail);

    /// <summary>One or more members, parameters or headers are invalid; each is listed in "errors".</summary>
    public static ProblemHttpResult InvalidRequest(IReadOnlyList<ProblemError> errors) =>
        Create(
            StatusCodes.Status400BadRequest,
            "invalid-request",
            "Invalid submission",
            errors.Count == 1 ? errors[0].Describe() : string.Join("; ", errors.Select(e => e.Describe())),
            new Dictionary<string, object?> { ["errors"] = errors });

    public static ProblemHttpResult InvalidMessage(string detail) =>
        Create(StatusCodes.Status400BadRequest, "invalid-message", "Invalid message", detail);

    public static ProblemHttpResult TooManyRecipients(int count, int limit) =>
        Create(
            StatusCodes.Status400BadRequest,
            "too-many-recipients",
            "Too many recipients",
            $"The submission has {count} distinct recipients; the limit is {limit} (Ingress:MaxRecipients).",
            new Dictionary<string, object?> { ["limit"] = limit });

    public static ProblemHttpResult MessageTooLarge(string detail, long limit) =>
        Create(
            StatusCodes.Status413PayloadTooLarge,
            "message-too-large",
            "Message too large",
            detail,
            new Dictionary<string, object?> { ["limit"] = limit });

    public static ProblemHttpResult InvalidIdempotencyKey(string detail) =>
        Create(StatusCodes.Status400BadRequest, "invalid-idempotency-key", "Invalid Idempotency-Key", detail);

    public static ProblemHttpResult IdempotencyConflict(Guid messageId) =>
        Create(
            StatusCodes.Status409Conflict,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            $"This Idempotency-Key was already used for message {messageId:D} with a different sender or recipients.",
            new Dictionary<string, object?> { ["id"] = messageId });

    /// <summary>Policy refused recipients: 422 when any refusal is permanent, otherwise (all 4xx) 503 to retry later.</summary>
    public static ProblemHttpResult RecipientsRefused(IReadOnlyList<RefusedRecipient> refused, TimeSpan retryAfter, HttpResponse response)
    {
        var permanent = refused.Any(r => r.Code >= 500);
        if (!permanent)
        {
            SetRetryAfter(response, retryAfter);
        }

        var detail = refused.Count == 1
            ? $"Recipient {refused[0].Address} was refused: {refused[0].Code} {refused[0].EnhancedCode} {refused[0].Text}"
            : $"{refused.Count} recipients were refused; see \"recipients\".";
        return Create(
            permanent ? StatusCodes.Status422UnprocessableEntity : StatusCodes.Status503ServiceUnavailable,
            "recipients-refused",
            permanent ? "Recipients refused" : "Recipients deferred, try again later",
            detail + (permanent ? " Nothing was accepted." : " Nothing was accepted; try again later."),
            new Dictionary<string, object?> { ["recipients"] = refused });
    }

    /// <summary>The message was refused at acceptance (Policy's CheckMessage, loop detection), as its SMTP reply.</summary>
    public static ProblemHttpResult MessageRefused(SmtpReply reply, TimeSpan retryAfter, HttpResponse response)
    {
        if (reply.IsTransient)
        {
            SetRetryAfter(response, retryAfter);
        }

        return Create(
            reply.IsTransient ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status422UnprocessableEntity,
            "message-refused",
            reply.IsTransient ? "Message deferred, try again later" : "Message refused",
            $"The message was refused: {reply.Code} {reply.EnhancedCode} {string.Join(' ', reply.Lines)}",
            new Dictionary<string, object?> { ["reply"] = SmtpReplyInfo.From(reply) });
    }

    /// <summary>The key may not send as the message's From domain (Ingress:Api:Keys:n:SenderDomains): 403.</summary>
    public static ProblemHttpResult SenderDomainRefused(SmtpReply reply) =>
        Create(
            StatusCodes.Status403Forbidden,
            "sender-domain-not-allowed",
            "Sender domain not allowed",
            string.Join(' ', reply.Lines),
            new Dictionary<string, object?> { ["reply"] = SmtpReplyInfo.From(reply) });

    /// <summary>Policy or the spool did not answer in time: nothing was accepted (ARCHITECTURE.md "Never accept unchecked").</summary>
    public static ProblemHttpResult Unavailable(string detail, TimeSpan retryAfter, HttpResponse response)
    {
        SetRetryAfter(response, retryAfter);
        return Create(StatusCodes.Status503ServiceUnavailable, "temporarily-unavailable", "Temporarily unavailable", detail);
    }

    private static void SetRetryAfter(HttpResponse response, TimeSpan retryAfter) =>
        // RFC 9110 §10.2.3: delay-seconds.
        response.Headers.RetryAfter = ((long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);

    private static ProblemHttpResult Create(int status, string type, string title, string detail, Dictionary<string, object?>? extensions = null)
    {
        var problem = new ProblemDetails { Status = status, Type = TypePrefix + type, Title = title, Detail = detail };
        foreach (var (key, value) in extensions ?? [])
        {
            problem.Extensions[key] = value;
        }

        return TypedResults.Problem(problem);
    }
}

/// <summary>
/// One invalid input: where (a JSON Pointer into the body, RFC 6901, or a query parameter or request header) and why.
/// </summary>
internal sealed record ProblemError(string Detail)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Pointer { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Parameter { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Header { get; init; }

    public static ProblemError AtPointer(string pointer, string detail) => new(detail) { Pointer = pointer };

    public string Describe() =>
        Pointer is not null ? $"{Pointer}: {Detail}"
        : Parameter is not null ? $"query parameter '{Parameter}': {Detail}"
        : Header is not null ? $"header {Header}: {Detail}"
        : Detail;
}

/// <summary>A recipient Policy refused, with its SMTP reply.</summary>
internal sealed record RefusedRecipient(string Address, int Code, string? EnhancedCode, string Text);

/// <summary>An SMTP reply in a problem document.</summary>
internal sealed record SmtpReplyInfo(int Code, string? EnhancedCode, string Text)
{
    public static SmtpReplyInfo From(SmtpReply reply) => new(reply.Code, reply.EnhancedCode, string.Join(' ', reply.Lines));
}
