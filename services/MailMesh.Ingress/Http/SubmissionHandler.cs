using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using MailMesh.Contracts;
using MailMesh.Ingress.Acceptance;
using MailMesh.Ingress.Memory;
using MailMesh.Smtp;
using MailMesh.Storage;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace MailMesh.Ingress.Http;

/// <summary>
/// <c>POST /api/v1/messages</c>: one message as JSON (built into RFC 5322 with MimeKit) or as message/rfc822, checked
/// by Policy recipient by recipient, then handed to <see cref="MessageAcceptor"/>, the acceptance path SMTP uses too
/// (CheckMessage, the synchronous spool commit, MessageReceived). 202 only after the commit: "250 means safe" holds for
/// HTTP as well.
/// </summary>
internal sealed class SubmissionHandler(
    MessageAcceptor acceptor,
    MessageBufferBudget budget,
    IngressMetrics metrics,
    IngressPolicy policy,
    ISpool spool,
    IOptions<IngressOptions> ingressOptions,
    IOptions<HttpApiOptions> apiOptions,
    TimeProvider time,
    ILogger<SubmissionHandler> logger)
{
    public const string JsonMediaType = "application/json";
    public const string RawMediaType = "message/rfc822";

    private static readonly string[] RemovedFromRawMessages = ["Bcc"];

    private readonly IngressOptions _options = ingressOptions.Value;
    private readonly HttpApiOptions _api = apiOptions.Value;

    public async Task<IResult> HandleAsync(HttpContext context)
    {
        var cancellationToken = context.RequestAborted;
        var keyName = context.User.Identity?.Name ?? throw new InvalidOperationException("The endpoint requires an authenticated API key.");
        using var activity = IngressTelemetry.Source.StartActivity("http.submission");
        activity?.SetTag("mailmesh.api_key.name", keyName);

        var result = await SubmitAsync(context, keyName, activity, cancellationToken);
        if (result is ProblemHttpResult problem)
        {
            activity?.SetTag("error.type", problem.ProblemDetails.Type?[Problems.TypePrefix.Length..]);
            HttpApiLog.Invalid(logger, keyName, problem.StatusCode, problem.ProblemDetails.Detail);
        }

        return result;
    }

    private async Task<IResult> SubmitAsync(HttpContext context, string keyName, Activity? activity, CancellationToken cancellationToken)
    {
        var request = context.Request;
        if (request.Headers.ContentEncoding.Any(e => !string.Equals(e?.Trim(), "identity", StringComparison.OrdinalIgnoreCase)))
        {
            // RFC 9110 §15.5.16: a 415 for a content coding names the acceptable ones.
            context.Response.Headers.AcceptEncoding = "identity";
            return Problems.UnsupportedMediaType($"Content-Encoding '{request.Headers.ContentEncoding}' is not supported; send the body uncompressed.");
        }

        var media = MediaTypeHeaderValue.TryParse(request.ContentType, out var contentType) ? contentType.MediaType.Value : null;
        var isJson = string.Equals(media, JsonMediaType, StringComparison.OrdinalIgnoreCase);
        var isRaw = string.Equals(media, RawMediaType, StringComparison.OrdinalIgnoreCase);
        if (!isJson && !isRaw)
        {
            context.Response.Headers["Accept-Post"] = JsonMediaType + ", " + RawMediaType;
            return Problems.UnsupportedMediaType(string.IsNullOrEmpty(request.ContentType)
                ? "The request has no Content-Type; send application/json or message/rfc822."
                : $"Content-Type '{Addresses.Shorten(request.ContentType)}' is not supported; send application/json or message/rfc822.");
        }

        if (isJson && contentType!.Charset.HasValue && !contentType.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase))
        {
            return Problems.UnsupportedMediaType($"JSON must be UTF-8 (RFC 8259 §8.1), not charset={contentType.Charset}.");
        }

        string? idempotencyKey = null;
        if (request.Headers.TryGetValue(IdempotencyKeys.HeaderName, out var keyValues))
        {
            if (keyValues.Count != 1)
            {
                return Problems.InvalidIdempotencyKey("Send one Idempotency-Key header, not several.");
            }

            if (!IdempotencyKeys.TryParse(keyValues[0], out var parsedKey, out var keyError))
            {
                return Problems.InvalidIdempotencyKey($"The Idempotency-Key {keyError}.");
            }

            idempotencyKey = parsedKey;
        }

        // The message id is known before the content is built, so a generated Message-ID can carry it.
        var receivedAt = time.GetUtcNow();
        var messageId = idempotencyKey is null ? Guid.CreateVersion7(receivedAt) : IdempotencyKeys.MessageId(keyName, idempotencyKey);
        activity?.SetTag("mailmesh.message.id", messageId.ToString());

        // Both kinds are received as SMTP receives a message: into a buffer reserved from the budget that moves to a spill
        // file past Ingress:MemoryBodyThreshold (holding only a staging area of the budget then), refused with 413 from
        // Content-Length or as soon as a chunked body passes the limit. A raw message has its line ends normalised as it
        // arrives and is stored from there without a second copy. A JSON body is parsed where it is (through a memory map
        // when spilled); the message composed from it goes into a second such buffer, and the JSON is released before the
        // commit.
        var limit = isJson ? JsonBodyLimit(_options.MaxMessageSize) : _options.MaxMessageSize;
        var inMemory = Math.Min(request.ContentLength ?? 0, _options.MemoryBodyThreshold + (64 * 1024));
        if (request.ContentLength <= limit && budget.Available < Math.Max(inMemory, 64 * 1024))
        {
            return BudgetExhausted(context);
        }

        var normalizer = isJson ? null : new LineEndingNormalizer(_options.MaxTextLineLength);
        var (body, outcome) = await ReadBodyAsync(
            request, limit, budget, new BodySpill(_options.MemoryBodyThreshold, _options.SpillDirectory), normalizer, cancellationToken);
        using var bodyBuffer = body;
        if (outcome == BodyOutcome.BudgetExhausted)
        {
            return BudgetExhausted(context);
        }

        if (body is null)
        {
            return Problems.MessageTooLarge(
                isJson
                    ? $"The JSON body is larger than {limit} octets: Ingress:MaxMessageSize ({_options.MaxMessageSize} octets), an eighth more for JSON escapes and 64 KiB for the JSON around the content."
                    : $"The message is larger than {limit} octets (Ingress:MaxMessageSize).",
                _options.MaxMessageSize);
        }

        var prepared = isJson
            ? await PrepareJsonAsync(context, body, messageId, receivedAt, cancellationToken)
            : await PrepareRawAsync(request, body, normalizer!, messageId, receivedAt, cancellationToken);
        using var composed = prepared.Composed;
        if (isJson)
        {
            // The message is composed: the JSON it came from is no longer needed while Policy and the spool are asked.
            body.Dispose();
        }

        if (prepared.Problem is { } invalid)
        {
            return invalid;
        }

        var (sender, recipients, content, bodyType) = (prepared.Sender!, prepared.Recipients!, prepared.Content, prepared.BodyType);
        activity?.SetTag("mailmesh.sender", sender);
        if (recipients.Count > _options.MaxRecipients)
        {
            return Problems.TooManyRecipients(recipients.Count, _options.MaxRecipients);
        }

        var contentLength = content.Length + (prepared.Tail?.Length ?? 0);
        if (contentLength > _options.MaxMessageSize)
        {
            return Problems.MessageTooLarge(
                $"The message built from the request is {contentLength} octets; the limit is {_options.MaxMessageSize} (Ingress:MaxMessageSize).",
                _options.MaxMessageSize);
        }

        var clientAddress = ClientAddress(context.Connection.RemoteIpAddress);
        var recipientAddresses = recipients.Select(r => r.Address).ToList();
        if (idempotencyKey is not null && await ReplayAsync(context, keyName, messageId, sender, recipientAddresses, cancellationToken) is { } replay)
        {
            return replay;
        }

        if (await CheckRecipientsAsync(context, keyName, clientAddress, sender, recipientAddresses, cancellationToken) is { } refused)
        {
            return refused;
        }

        var accepted = await acceptor.AcceptAsync(
            new AcceptRequest
            {
                Sender = sender,
                Recipients = [.. recipientAddresses.Select(a => new NewRecipient { Address = a })],
                Content = content,
                ContentTail = prepared.Tail,
                AddReceivedHeader = true,
                ClientAddress = clientAddress,
                ClientIp = MapToIPv4(context.Connection.RemoteIpAddress),
                AuthenticatedUser = keyName,
                Origin = MessageOrigin.Http,
                Protocol = request.IsHttps ? "HTTPS" : "HTTP",
                BodyType = bodyType,
                MessageId = messageId,
                ReceivedAt = receivedAt,

                // Issue 11: the request's pool (member, parameter or a raw message's X-MailMesh-Pool), else the API key's.
                Pool = prepared.Pool ?? _api.Keys.FirstOrDefault(k => string.Equals(k.Name, keyName, StringComparison.OrdinalIgnoreCase))?.Pool,
            },
            cancellationToken);

        if (!accepted.Accepted)
        {
            return accepted.ErrorType is "policy_unavailable" or "spool_unavailable"
                ? Problems.Unavailable(
                    accepted.ErrorType == "spool_unavailable"
                        ? "The message could not be committed to the spool in time; nothing was accepted. Try again later."
                        : "Policy did not answer in time; nothing was accepted. Try again later.",
                    _api.RetryAfter,
                    context.Response)
                : accepted.ErrorType == "sender_domain" ? Problems.SenderDomainRefused(accepted.Reply)
                : Problems.MessageRefused(accepted.Reply, _api.RetryAfter, context.Response);
        }

        var answer = new SubmissionAccepted(accepted.MessageId, recipientAddresses);
        var location = "/api/v1/messages/" + accepted.MessageId.ToString("D");
        if (accepted.Duplicate)
        {
            // A concurrent request with the same Idempotency-Key committed first.
            HttpApiLog.Replayed(logger, keyName, accepted.MessageId);
            context.Response.Headers.Location = location;
            return TypedResults.Ok(answer);
        }

        return TypedResults.Accepted(location, answer);
    }

    /// <summary>A retry with a known Idempotency-Key: 200 with the first answer, or 409 when the envelope differs.</summary>
    private async Task<IResult?> ReplayAsync(HttpContext context, string keyName, Guid messageId, string sender, List<string> recipients, CancellationToken cancellationToken)
    {
        MessageStatus? existing;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.SpoolTimeout);
            existing = await spool.GetStatusAsync(messageId, timeout.Token);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            HttpApiLog.IdempotencyLookupFailed(logger, messageId, ex);
            return Problems.Unavailable("The spool did not answer in time; nothing was accepted. Try again later.", _api.RetryAfter, context.Response);
        }

        if (existing is null)
        {
            return null;
        }

        var stored = existing.Recipients.Select(r => r.Address).ToHashSet(StringComparer.OrdinalIgnoreCase);
        if (!string.Equals(existing.Sender, sender, StringComparison.OrdinalIgnoreCase) || !stored.SetEquals(recipients))
        {
            HttpApiLog.IdempotencyConflict(logger, keyName, messageId);
            return Problems.IdempotencyConflict(messageId);
        }

        HttpApiLog.Replayed(logger, keyName, messageId);
        context.Response.Headers.Location = "/api/v1/messages/" + messageId.ToString("D");
        return TypedResults.Ok(new SubmissionAccepted(messageId, [.. existing.Recipients.Select(r => r.Address)]));
    }

    /// <summary>
    /// Policy's CheckRecipient for every recipient, as SMTP asks at each RCPT. All of them are asked so the answer lists
    /// every refusal; one refusal refuses the whole request (nothing is accepted for a partial recipient list).
    /// </summary>
    private async Task<IResult?> CheckRecipientsAsync(
        HttpContext context, string keyName, string clientAddress, string sender, List<string> recipients, CancellationToken cancellationToken)
    {
        List<RefusedRecipient> refused = [];
        SmtpReply? firstRefusal = null;
        var accepted = 0;
        foreach (var recipient in recipients)
        {
            PolicyDecision decision;
            try
            {
                decision = await policy.CheckAsync(
                    new CheckRecipient
                    {
                        ClientAddress = clientAddress,
                        Sender = sender,
                        Recipient = recipient,
                        AuthenticatedUser = keyName,
                        AcceptedRecipients = accepted,
                    },
                    cancellationToken);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                // ARCHITECTURE.md "Never accept unchecked": no answer in time is a 503, never an acceptance.
                HttpApiLog.PolicyUnavailable(logger, recipient, keyName, ex);
                acceptor.RecordRefusal(MessageOrigin.Http, sender, clientAddress, SmtpReplies.TemporaryFailure, "policy_unavailable");
                return Problems.Unavailable("Policy did not answer in time; nothing was accepted. Try again later.", _api.RetryAfter, context.Response);
            }

            if (decision.Accepted)
            {
                accepted++;
                continue;
            }

            var reply = PolicyReplies.ToReply(decision);
            firstRefusal ??= reply;
            HttpApiLog.RecipientRefused(logger, keyName, recipient, reply.Summary);
            refused.Add(new RefusedRecipient(recipient, reply.Code, reply.EnhancedCode, string.Join(' ', reply.Lines)));
        }

        if (refused.Count == 0)
        {
            return null;
        }

        acceptor.RecordRefusal(MessageOrigin.Http, sender, clientAddress, firstRefusal!, "policy");
        return Problems.RecipientsRefused(refused, _api.RetryAfter, context.Response);
    }

    /// <summary>
    /// Parses the JSON where it was received (a spilled body through a read-only memory map of its file) and composes the
    /// message into a buffer of its own, reserved from the same budget and spilling past Ingress:MemoryBodyThreshold as
    /// SMTP's does; stopped at once when it passes Ingress:MaxMessageSize (413) or the budget is used up (503).
    /// </summary>
    private async Task<Prepared> PrepareJsonAsync(HttpContext context, MessageBuffer body, Guid messageId, DateTimeOffset receivedAt, CancellationToken cancellationToken)
    {
        // The map goes before the body buffer that owns the file (SubmitAsync disposes that after this returns).
        using var mapped = body.IsSpilled ? body.MapSpilled() : null;
        var json = mapped?.Memory ?? body.WrittenMemory;
        var submission = JsonSubmissionReader.Read(json, out var malformed, out var errors);
        if (malformed is not null)
        {
            return Prepared.Invalid(Problems.MalformedJson(malformed));
        }

        if (submission is null)
        {
            return Prepared.Invalid(Problems.InvalidRequest(errors));
        }

        var composed = new MessageBuffer(
            budget, 4096, (int)_options.MaxMessageSize + (64 * 1024), new BodySpill(_options.MemoryBodyThreshold, _options.SpillDirectory));
        try
        {
            // RFC 5322 §3.6.4: the generated Message-ID carries the message id, unique by construction (and stable for an
            // idempotent retry).
            var output = new MessageBufferStream(composed, _options.MaxMessageSize);
            await MessageComposer.ComposeAsync(submission, receivedAt, messageId.ToString("D") + "@" + _options.HostName, output, cancellationToken);
            if (!composed.Complete())
            {
                throw new MessageBufferFullException(tooLarge: false);
            }

            var content = composed.IsSpilled ? ReadOnlyMemory<byte>.Empty : composed.WrittenMemory;
            return new Prepared(submission.Sender.Address, Distinct(submission.Recipients), content, composed.HasEightBit ? BodyType.EightBitMime : BodyType.SevenBit)
            {
                Pool = submission.Pool,
                Tail = composed.IsSpilled ? composed.ContentSource() : null,
                Composed = composed,
            };
        }
        catch (MessageBufferFullException full)
        {
            composed.Dispose();
            return Prepared.Invalid(full.TooLarge
                ? Problems.MessageTooLarge(
                    $"The message built from the request is larger than {_options.MaxMessageSize} octets (Ingress:MaxMessageSize).", _options.MaxMessageSize)
                : BudgetExhausted(context));
        }
        catch
        {
            composed.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The header section of a raw message (normalised as it arrived) parsed and rewritten; the body is left where it
    /// was received (<see cref="Prepared.Tail"/>: a slice of the buffer, or of the spill file from the offset where
    /// the body starts).
    /// </summary>
    private async Task<Prepared> PrepareRawAsync(
        HttpRequest request, MessageBuffer body, LineEndingNormalizer normalizer, Guid messageId, DateTimeOffset receivedAt, CancellationToken cancellationToken)
    {
        if (body.Length == 0)
        {
            return Prepared.Invalid(Problems.InvalidMessage("The message is empty."));
        }

        if (normalizer.LongLine > 0)
        {
            return Prepared.Invalid(Problems.InvalidMessage(RawMessage.LongLineError(normalizer.LongLine, _options.MaxTextLineLength)));
        }

        RawMessage? message;
        string error;
        if (!body.IsSpilled)
        {
            message = RawMessage.TryParseHeaderSection(body.WrittenSpan, whole: true, body.HasEightBit, out error);
        }
        else
        {
            // The header section is read back from the head of the spill file, into memory reserved from the budget.
            var headLength = (int)Math.Min(body.Length, SpilledHeaderLimit);
            if (!budget.TryReserve(headLength))
            {
                return Prepared.Invalid(BudgetExhausted(request.HttpContext));
            }

            var head = ArrayPool<byte>.Shared.Rent(headLength);
            try
            {
                await using (var stream = body.ContentSource().Open())
                {
                    await stream.ReadExactlyAsync(head.AsMemory(0, headLength), cancellationToken);
                }

                message = RawMessage.TryParseHeaderSection(head.AsSpan(0, headLength), whole: headLength == body.Length, body.HasEightBit, out error);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(head);
                budget.Release(headLength);
            }
        }

        if (message is null)
        {
            return Prepared.Invalid(Problems.InvalidMessage(error));
        }

        // RFC 5322 §3.6: exactly one From (and Date, which is added below when absent).
        var fromFields = message.All("From").ToList();
        if (fromFields.Count != 1)
        {
            return Prepared.Invalid(Problems.InvalidMessage(fromFields.Count == 0
                ? "The message has no From header field (RFC 5322 §3.6 requires one)."
                : "The message has more than one From header field (RFC 5322 §3.6 allows one)."));
        }

        List<ProblemError> errors = [];
        var sender = EnvelopeSender(request, message, errors);
        var recipients = EnvelopeRecipients(request, message, errors);

        // Issue 11: ?pool= names the source-IP pool, else the message's X-MailMesh-Pool field (the request is
        // authenticated); either comes before the API key's pool.
        string? pool = request.Query.TryGetValue("pool", out var pools) ? pools.ToString() : null;
        if (pool is not null && !MailMesh.Smtp.PoolHeader.IsValidName(pool))
        {
            errors.Add(new ProblemError("a pool name is 1-64 letters, digits and . _ -") { Parameter = "pool" });
        }
        else if (pool is null && message.All(MailMesh.Smtp.PoolHeader.Name).FirstOrDefault()?.Value.Trim() is { } fromHeader
            && MailMesh.Smtp.PoolHeader.IsValidName(fromHeader))
        {
            pool = fromHeader;
        }

        if (errors.Count > 0)
        {
            return Prepared.Invalid(Problems.InvalidRequest(errors));
        }

        // RFC 6409 §8.2 and §8.3: a submission agent may add Date and Message-ID when they are missing.
        List<string> added = [];
        if (!message.Has("Date"))
        {
            added.Add("Date: " + ReceivedHeader.FormatDate(receivedAt));
        }

        if (!message.Has("Message-ID"))
        {
            added.Add("Message-ID: <" + messageId.ToString("D") + "@" + _options.HostName + ">");
        }

        // RFC 5322 §3.6.3: Bcc recipients are in the envelope; the field itself is removed before transmission. Only the
        // header section is rewritten (a small copy); the body follows from where it was received.
        var header = message.RewriteHeaderSection(RemovedFromRawMessages, added);
        var tail = body.IsSpilled
            ? body.ContentSource(message.HeaderEnd)
            : InMemory(body.WrittenMemory[message.HeaderEnd..]);
        return new Prepared(sender!, recipients, header, message.Has8BitData ? BodyType.EightBitMime : BodyType.SevenBit) { Tail = tail, Pool = pool };
    }

    /// <summary>The envelope sender of a raw message: ?from=, X-MailMesh-From, or the Sender / From header field.</summary>
    private static string? EnvelopeSender(HttpRequest request, RawMessage message, List<ProblemError> errors)
    {
        var (values, source) = Explicit(request, "from", "X-MailMesh-From");
        if (values.Count > 1)
        {
            errors.Add(Located(source, "give one envelope sender"));
            return null;
        }

        if (values.Count == 1)
        {
            if (Addresses.TryParseMailbox(values[0], out var address, out var error))
            {
                return address.Envelope.Address;
            }

            errors.Add(Located(source, error));
            return null;
        }

        // RFC 5322 §3.6.2: Sender names the agent responsible for the transmission, From the author(s).
        var field = message.All("Sender").FirstOrDefault() ?? message.All("From").First();
        List<ParsedAddress> parsed = [];
        if (!Addresses.TryParseList(field.Value, parsed, out var listError))
        {
            errors.Add(new ProblemError(listError) { Header = field.Name + " (in the message)" });
            return null;
        }

        if (parsed.Count != 1)
        {
            errors.Add(new ProblemError("has several mailboxes; add a Sender field or give ?from= (RFC 5322 §3.6.2)") { Header = field.Name + " (in the message)" });
            return null;
        }

        return parsed[0].Envelope.Address;
    }

    /// <summary>The envelope recipients of a raw message: ?to= (repeatable), X-MailMesh-To, or To + Cc + Bcc.</summary>
    private static List<Mailbox> EnvelopeRecipients(HttpRequest request, RawMessage message, List<ProblemError> errors)
    {
        List<ParsedAddress> recipients = [];
        var (values, source) = Explicit(request, "to", "X-MailMesh-To");
        if (values.Count > 0)
        {
            foreach (var value in values)
            {
                if (!Addresses.TryParseList(value, recipients, out var error))
                {
                    errors.Add(Located(source, error));
                }
            }
        }
        else
        {
            foreach (var field in message.Headers.Where(h => h.Name.Equals("To", StringComparison.OrdinalIgnoreCase)
                || h.Name.Equals("Cc", StringComparison.OrdinalIgnoreCase) || h.Name.Equals("Bcc", StringComparison.OrdinalIgnoreCase)))
            {
                if (!Addresses.TryParseList(field.Value, recipients, out var error))
                {
                    errors.Add(new ProblemError(error) { Header = field.Name + " (in the message)" });
                }
            }
        }

        if (recipients.Count == 0 && errors.Count == 0)
        {
            errors.Add(new ProblemError("no recipients: give ?to=, X-MailMesh-To, or To / Cc / Bcc fields in the message") { Parameter = "to" });
        }

        return Distinct(recipients.Select(r => r.Envelope));
    }

    /// <summary>The query parameter if present, else the request header (comma lists are split by the address parser).</summary>
    private static (List<string> Values, ProblemError Source) Explicit(HttpRequest request, string parameter, string header)
    {
        if (request.Query.TryGetValue(parameter, out var query) && query.Count > 0)
        {
            return ([.. query.OfType<string>()], new ProblemError(string.Empty) { Parameter = parameter });
        }

        return request.Headers.TryGetValue(header, out var values)
            ? ([.. values.OfType<string>()], new ProblemError(string.Empty) { Header = header })
            : ([], new ProblemError(string.Empty) { Header = header });
    }

    private static ProblemError Located(ProblemError source, string detail) => source with { Detail = detail };

    /// <summary>Recipients once each (a mailbox is its local part as written and its lower-cased domain).</summary>
    private static List<Mailbox> Distinct(IEnumerable<Mailbox> recipients) => [.. recipients.Distinct()];

    /// <summary>
    /// The largest JSON body read: the message limit, an eighth more for escapes, and 64 KiB for the members around the
    /// content. The composed message carries attachments in base64 again (and text as quoted-printable or base64), so it
    /// is about as large as the JSON it is built from, except for escapes: System.Text.Json writes the base64 "+" as
    /// \u002B (6 octets, +7.8 % on base64), PHP writes "/" as \/ (+1.6 %). A longer body would make a message over
    /// Ingress:MaxMessageSize but for unusual escaping (a text of quotes), and is refused from its Content-Length, or as
    /// soon as a chunked one passes this, before it is held; such a message can be sent as message/rfc822.
    /// </summary>
    internal static long JsonBodyLimit(long maxMessageSize) => maxMessageSize + (maxMessageSize / 8) + (64 * 1024);

    /// <summary>
    /// 503 with a reason: the memory budget for message bytes in flight (Ingress:MaxBufferedBytes, shared with SMTP)
    /// is used up. Nothing was accepted; the client retries after Retry-After.
    /// </summary>
    private ProblemHttpResult BudgetExhausted(HttpContext context)
    {
        metrics.BufferBudgetExhausted("http");
        return Problems.Unavailable(
            "Ingress is holding as many message bytes in memory as Ingress:MaxBufferedBytes allows; nothing was accepted. Try again later.",
            _api.RetryAfter,
            context.Response);
    }

    private enum BodyOutcome
    {
        Read,
        TooLarge,
        BudgetExhausted,
    }

    /// <summary>
    /// Reads the body into a buffer that grows as octets arrive (never sized from Content-Length), reserved from the
    /// buffered-bytes budget, up to <paramref name="limit"/> octets as sent (line ends normalised by
    /// <paramref name="normalizer"/> if any; the stored size is checked later); with <paramref name="spill"/>, past its
    /// threshold the buffer moves to a spill file. The caller disposes it (which deletes the file); so does every early return and a client
    /// that goes away mid-body.
    /// </summary>
    private static async Task<(MessageBuffer? Body, BodyOutcome Outcome)> ReadBodyAsync(
        HttpRequest request, long limit, MessageBufferBudget bodyBudget, BodySpill? spill, LineEndingNormalizer? normalizer,
        CancellationToken cancellationToken)
    {
        if (request.ContentLength > limit)
        {
            return (null, BodyOutcome.TooLarge);
        }

        // Kestrel's own cap (30 MB by default) would cut the message limit short: this method enforces the limit.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = limit + 1;
        }

        // Normalising can at most double the octets (a bare LF becomes CRLF): the buffer never drops any below this.
        var capacity = (int)Math.Min(int.MaxValue, normalizer is null ? limit + 1 : (2 * limit) + 2);
        var buffer = new MessageBuffer(bodyBudget, 4096, capacity, spill);
        try
        {
            var reader = request.BodyReader;
            long received = 0;
            while (true)
            {
                ReadResult read;
                try
                {
                    read = await reader.ReadAsync(cancellationToken);
                }
                catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
                {
                    // Kestrel's cap (set to the limit above) met first, inside a chunk: the same 413 with problem details.
                    buffer.Dispose();
                    return (null, BodyOutcome.TooLarge);
                }

                foreach (var segment in read.Buffer)
                {
                    received += segment.Length;
                    if (received > limit)
                    {
                        reader.AdvanceTo(read.Buffer.End);
                        buffer.Dispose();
                        return (null, BodyOutcome.TooLarge);
                    }

                    if (normalizer is null)
                    {
                        buffer.Write(segment.Span);
                    }
                    else
                    {
                        normalizer.Write(segment.Span, buffer);
                    }

                    if (buffer.Exhausted)
                    {
                        reader.AdvanceTo(read.Buffer.End);
                        buffer.Dispose();
                        return (null, BodyOutcome.BudgetExhausted);
                    }
                }

                reader.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted)
                {
                    normalizer?.Complete(buffer);

                    // A spilled body's last staged octets go to its file now: a spill limit met there is a 503 like any other.
                    if (!buffer.Complete())
                    {
                        buffer.Dispose();
                        return (null, BodyOutcome.BudgetExhausted);
                    }

                    return (buffer, BodyOutcome.Read);
                }
            }
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>The most of a spilled raw message read back to find its header section (Postfix's header_size_limit is 100 KiB).</summary>
    internal const int SpilledHeaderLimit = 256 * 1024;

    private static MessageContentSource InMemory(ReadOnlyMemory<byte> content) =>
        new(content.Length, () => new PrefixedContentStream(content, ReadOnlyMemory<byte>.Empty));

    private static IPAddress? MapToIPv4(IPAddress? address) => address is { IsIPv4MappedToIPv6: true } ? address.MapToIPv4() : address;

    private static string ClientAddress(IPAddress? address) => MapToIPv4(address)?.ToString() ?? "unknown";

    private readonly record struct Prepared(string? Sender, List<Mailbox>? Recipients, ReadOnlyMemory<byte> Content, BodyType BodyType)
    {
        public ProblemHttpResult? Problem { get; init; }

        /// <summary>What follows <see cref="Content"/>, streamed (a raw message's body); null when Content is all.</summary>
        public MessageContentSource? Tail { get; init; }

        /// <summary>The buffer a JSON submission was composed into (Content and Tail are views of it), disposed after the commit.</summary>
        public MessageBuffer? Composed { get; init; }

        /// <summary>The source-IP pool the request names (JSON member or query parameter <c>pool</c>), or null.</summary>
        public string? Pool { get; init; }

        public static Prepared Invalid(ProblemHttpResult problem) => new(null, null, default, BodyType.SevenBit) { Problem = problem };
    }
}

/// <summary>The answer to an accepted submission: the message id (GET /api/v1/messages/{id} on the Queue) and its recipients.</summary>
internal sealed record SubmissionAccepted(Guid Id, IReadOnlyList<string> Recipients);
