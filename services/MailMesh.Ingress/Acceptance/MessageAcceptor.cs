using System.Buffers;
using System.Diagnostics;
using System.Net;
using MailMesh.Contracts;
using MailMesh.Ingress.Memory;
using MailMesh.Policy.Content;
using MailMesh.ServiceDefaults;
using MailMesh.Smtp;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Ingress.Acceptance;

/// <summary>
/// The acceptance path every submission takes, SMTP (end of DATA / BDAT LAST) or HTTP: loop check, Policy's
/// CheckMessage, the synchronous spool commit bounded by <see cref="IngressOptions.SpoolTimeout"/>, metrics, and the
/// announcement after the commit (<see cref="ReceivedAnnouncer"/>). ARCHITECTURE.md "250 means safe" and "Never accept unchecked" are
/// enforced here, once.
/// </summary>
internal sealed class MessageAcceptor(
    IServiceScopeFactory scopes,
    ISpool spool,
    IngressMetrics metrics,
    SenderDomains senderDomains,
    ReceivedAnnouncer announcer,
    IOptions<IngressOptions> options,
    TimeProvider time,
    ILogger<MessageAcceptor> logger)
{
    private readonly IngressOptions _options = options.Value;

    /// <inheritdoc cref="AcceptAsync(AcceptRequest, Func{AcceptResult, CancellationToken, ValueTask}?, CancellationToken)"/>
    public Task<AcceptResult> AcceptAsync(AcceptRequest request, CancellationToken cancellationToken) =>
        AcceptAsync(request, null, cancellationToken);

    /// <summary>
    /// Checks, commits and announces one message. Never throws for a dependency failure: Policy or spool trouble is a
    /// 451 4.3.0 result. <paramref name="committed"/> runs after the commit and before the announcement is queued.
    /// </summary>
    public async Task<AcceptResult> AcceptAsync(
        AcceptRequest request,
        Func<AcceptResult, CancellationToken, ValueTask>? committed,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Recipients.Count == 0)
        {
            throw new ArgumentException("A message needs at least one recipient.", nameof(request));
        }

        var started = time.GetTimestamp();
        var messageId = request.MessageId ?? Guid.CreateVersion7();
        var receivedAt = request.ReceivedAt ?? time.GetUtcNow();
        var origin = request.Origin;
        var source = request.ContentSource;
        if (source is not null && request.AddReceivedHeader)
        {
            throw new ArgumentException("A streamed message must already start with the Received header.", nameof(request));
        }

        if (request.ContentTail is not null && !request.AddReceivedHeader)
        {
            throw new ArgumentException("A content tail is streamed after our Received header and the content.", nameof(request));
        }

        var content = request.Content;
        int received;
        byte[]? receivedHeader = null;
        if (request.AddReceivedHeader)
        {
            // Our Received header is written first and the body is streamed after it (never copied behind it).
            receivedHeader = ReceivedHeaderFor(request, messageId, receivedAt);
            source = Prefixed(receivedHeader, request.Content, request.ContentTail);
            content = ReadOnlyMemory<byte>.Empty;
            received = 1 + TraceHeaders.CountReceived(request.Content.Span);
        }
        else
        {
            received = CountReceived(content, source);
        }

        var contentLength = source?.Length ?? content.Length;

        // RFC 5321 §6.3: too many Received headers (ours included) means a loop.
        if (received > _options.MaxReceivedHeaders)
        {
            return Refuse(request, messageId, SmtpReplies.RoutingLoop, "loop");
        }

        // The authenticated account may send as its own From domains only (Delivery's DKIM signature is for that domain).
        if (!senderDomains.IsEmpty && await senderDomains.RefusalAsync(request, cancellationToken) is { } notAllowed)
        {
            // RFC 3463 5.7.1: delivery not authorized, message refused.
            return Refuse(request, messageId, new SmtpReply(550, "5.7.1", $"Sender domain {notAllowed} is not allowed for this account"), "sender_domain");
        }

        await using var scope = scopes.CreateAsyncScope();
        var policy = scope.ServiceProvider.GetRequiredService<IngressPolicy>();
        PolicyDecision decision;
        try
        {
            decision = await policy.CheckAsync(
                new CheckMessage
                {
                    ClientAddress = request.ClientAddress,
                    Sender = request.Sender,
                    Recipients = [.. request.Recipients.Select(r => r.Address)],
                    Size = contentLength,
                    AuthenticatedUser = request.AuthenticatedUser,
                },
                cancellationToken);
        }
        catch (Exception ex)
        {
            // ARCHITECTURE.md "Never accept unchecked": no answer in time is a 4xx, never an acceptance.
            Log.PolicyUnavailable(logger, "message", request.ClientAddress, ex);
            return Refuse(request, messageId, SmtpReplies.TemporaryFailure, "policy_unavailable");
        }

        if (!decision.Accepted)
        {
            var reply = PolicyReplies.ToReply(decision);
            Log.PolicyRefused(logger, "message", request.ClientAddress, reply.Summary);
            return Refuse(request, messageId, reply, "policy");
        }

        // Issue 10: DKIM/ARC/DMARC and scanners (Policy:Content), once, after Policy's rules and before the commit.
        var checks = scope.ServiceProvider.GetService<ContentChecks>();
        ContentCheckRequest? checkRequest = null;
        ContentRewrite? client = null;
        if (checks is { IsEmpty: false })
        {
            // Asked first without touching the content (its length counted with our trace fields): when no check
            // applies, nothing is read or copied.
            var isSubmitter = checks.IsSubmitter(request.ClientAddress, request.AuthenticatedUser);
            if (checks.AppliesTo(CheckRequest(request, isSubmitter, contentLength, static () => Stream.Null)))
            {
                try
                {
                    client = ContentRewrite.For(request, source, content);
                    checkRequest = CheckRequest(request, isSubmitter, client.Length, client.Open);
                }
                catch (Exception ex) when (ex is IOException or InvalidOperationException)
                {
                    AcceptanceLog.ContentCheckFailed(logger, messageId, ex);
                    return Refuse(request, messageId, SmtpReplies.TemporaryFailure, "content_unavailable");
                }
            }
        }

        if (checks is not null && checkRequest is not null && client is not null)
        {
            ContentVerdict verdict;
            try
            {
                verdict = await checks.CheckAsync(checkRequest, cancellationToken);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                AcceptanceLog.ContentCheckFailed(logger, messageId, ex);
                return Refuse(request, messageId, new SmtpReply(451, "4.7.1", "Message content could not be checked, try again later"), "content_unavailable");
            }

            if (verdict.Refusal is { } refusal)
            {
                var reply = PolicyReplies.ToReply(refusal);
                Log.PolicyRefused(logger, "content", request.ClientAddress, reply.Summary);
                return Refuse(request, messageId, reply, "content");
            }

            // A verdict with nothing checked (no check applied after all) leaves the message as it came.
            if (verdict.Checked && receivedHeader is not null)
            {
                var (header, rest) = client.RebuildHttp(verdict.Headers, checks);
                source = Prefixed(Concat(receivedHeader, header), rest, request.ContentTail);
            }
            else if (verdict.Checked)
            {
                (source, content) = client.RebuildSmtp(verdict.Headers, checks);
            }

            contentLength = source?.Length ?? content.Length;
        }

        // Issue 11: the pool the submission names; an X-MailMesh-Pool field only counts from an authenticated submitter
        // (SMTP AUTH or an API key), so an outside client cannot pick the addresses mail leaves from. Delivery removes
        // the field before sending, whoever wrote it.
        var pool = request.Pool;
        if (pool is null && request.AuthenticatedUser is not null)
        {
            pool = PoolFromHeader(request, source, content);
        }

        var message = new NewMessage
        {
            Id = messageId,
            Sender = request.Sender,
            Recipients = request.Recipients,
            Content = source is null ? content : ReadOnlyMemory<byte>.Empty,
            ContentSource = source,
            ReceivedAt = receivedAt,
            Origin = origin,
            ClientAddress = request.ClientAddress,
            ClientHelo = request.ClientHelo,
            AuthenticatedUser = request.AuthenticatedUser,
            BodyType = request.BodyType,
            SmtpUtf8 = request.SmtpUtf8,
            RequireTls = request.RequireTls,
            EnvelopeId = request.EnvelopeId,
            Ret = request.Ret,
            TraceParent = request.TraceParent ?? Telemetry.CurrentTraceParent(),
            Pool = pool,
        };

        // ARCHITECTURE.md "250 means safe": success is reported only after the synchronous commit returned.
        bool stored;
        using (var commit = IngressTelemetry.Source.StartActivity("spool.commit"))
        {
            commit?.SetTag("mailmesh.message.id", messageId.ToString());
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(_options.SpoolTimeout);
                stored = await spool.StoreAsync(message, timeout.Token);
            }
            catch (Exception ex)
            {
                commit?.SetStatus(ActivityStatusCode.Error);
                commit?.AddException(ex);
                Log.SpoolFailed(logger, messageId, ex);
                return Refuse(request, messageId, SmtpReplies.TemporaryFailure, "spool_unavailable");
            }
        }

        var size = contentLength;
        var result = new AcceptResult
        {
            Accepted = true,
            Reply = new SmtpReply(250, EnhancedStatusCodes.Ok, "Ok: queued as " + messageId.ToString("D")),
            MessageId = messageId,
            Duplicate = !stored,
            Size = size,
        };
        if (!stored)
        {
            // An idempotent resubmission: the first one was committed and announced.
            Log.DuplicateSubmission(logger, messageId, request.ClientAddress);
            return result;
        }

        metrics.Accepted(origin, size, time.GetElapsedTime(started));
        Log.MessageAccepted(logger, messageId, request.Sender, request.Recipients.Count, size, request.ClientAddress);
        if (committed is not null)
        {
            await committed(result, cancellationToken);
        }

        // The message is safe: the announcement is a hint (Queue's poll finds the message without it), queued for the
        // next batch without waiting for the broker.
        announcer.Announce(new MessageReceived
        {
            MessageId = messageId,
            Sender = request.Sender,
            RecipientCount = request.Recipients.Count,
            Size = size,
            ReceivedAt = receivedAt,
        });

        return result;
    }

    /// <summary>Counts and logs a refusal made before the acceptor ran (the SMTP session's content errors).</summary>
    public void RecordRefusal(MessageOrigin origin, string sender, string clientAddress, SmtpReply reply, string errorType)
    {
        Log.MessageRefused(logger, sender, clientAddress, reply.Summary);
        metrics.Rejected(origin, errorType);
    }

    private AcceptResult Refuse(AcceptRequest request, Guid messageId, SmtpReply reply, string errorType)
    {
        RecordRefusal(request.Origin, request.Sender, request.ClientAddress, reply, errorType);
        return new AcceptResult { Accepted = false, Reply = reply, MessageId = messageId, ErrorType = errorType };
    }

    /// <summary>The Received headers of the message; for a streamed one, of its first 256 KiB (a header section longer
    /// than that is counted up to there).</summary>
    private static int CountReceived(ReadOnlyMemory<byte> content, MessageContentSource? source) =>
        source is null ? TraceHeaders.CountReceived(content.Span) : ReadHead(source, HeadForLoopCheck, TraceHeaders.CountReceived);

    /// <summary>Reads up to <paramref name="limit"/> octets from the start of <paramref name="source"/> into a rented
    /// buffer and hands them to <paramref name="read"/>.</summary>
    private static T ReadHead<T>(MessageContentSource source, int limit, HeadReader<T> read)
    {
        var head = ArrayPool<byte>.Shared.Rent((int)Math.Min(source.Length, limit));
        try
        {
            using var stream = source.Open();
            var filled = 0;
            int count;
            while (filled < head.Length && (count = stream.Read(head, filled, head.Length - filled)) > 0)
            {
                filled += count;
            }

            return read(head.AsSpan(0, filled));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(head);
        }
    }

    private delegate T HeadReader<out T>(ReadOnlySpan<byte> head);

    private const int HeadForLoopCheck = 256 * 1024;

    /// <summary>The X-MailMesh-Pool field's value when it is a well-formed pool name (in the first 64 KiB), else null.</summary>
    private static string? PoolFromHeader(AcceptRequest request, MessageContentSource? source, ReadOnlyMemory<byte> content)
    {
        var value = request.AddReceivedHeader || source is null
            ? PoolHeader.Find(request.AddReceivedHeader ? request.Content.Span : content.Span)
            : ReadHead(source, 64 * 1024, PoolHeader.Find);
        return PoolHeader.IsValidName(value) ? value : null;
    }

    /// <summary>The content checks' view of the submission (<see cref="ContentCheckRequest"/>).</summary>
    private static ContentCheckRequest CheckRequest(AcceptRequest request, bool isSubmitter, long length, Func<Stream> open) => new()
    {
        ClientAddress = IPAddress.TryParse(request.ClientAddress, out var ip) ? ip : request.ClientIp ?? IPAddress.IPv6None,
        ClientHelo = request.Origin == MessageOrigin.Smtp ? request.ClientHelo : null,
        Sender = request.Sender,
        Recipients = [.. request.Recipients.Select(r => r.Address)],
        AuthenticatedUser = request.AuthenticatedUser,
        IsSubmitter = isSubmitter,
        Length = length,
        OpenContent = open,
    };

    /// <summary>Our header (and what the checks add) first, the client's content streamed after it, never copied behind
    /// it; a spilled tail also goes as a map behind the (small) header and rewritten header section.</summary>
    private static MessageContentSource Prefixed(byte[] header, ReadOnlyMemory<byte> body, MessageContentSource? tail) =>
        tail is null
            ? new MessageContentSource(header.Length + body.Length, () => new PrefixedContentStream(header, body))
            : new MessageContentSource(header.Length + body.Length + tail.Length,
                () => new ConcatenatedContentStream(new PrefixedContentStream(header, body), tail.Open()))
            {
                Map = tail.Map is null || tail.MappedPrefix.Length > 0 ? null : tail.Map,
                MappedPrefix = tail.Map is null || tail.MappedPrefix.Length > 0 ? ReadOnlyMemory<byte>.Empty : Concat(header, body.Span),
            };

    /// <summary>Two small in-memory parts as one array (the Received header and a rewritten header section).</summary>
    private static byte[] Concat(byte[] first, ReadOnlySpan<byte> second)
    {
        var both = new byte[first.Length + second.Length];
        first.CopyTo(both, 0);
        second.CopyTo(both.AsSpan(first.Length));
        return both;
    }

    private byte[] ReceivedHeaderFor(AcceptRequest request, Guid messageId, DateTimeOffset receivedAt)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        ReceivedHeader.Write(
            buffer,
            request.ClientHelo,
            request.ClientIp,
            _options.HostName,
            request.Protocol,
            messageId,
            request.Recipients.Count == 1 ? request.Recipients[0].Address : null,
            receivedAt);
        return buffer.WrittenSpan.ToArray();
    }
}

/// <summary>A read-only, seekable stream over a header and the body that follows it, so the message is stored with
/// the header first without copying the body behind it.</summary>
internal sealed class PrefixedContentStream(ReadOnlyMemory<byte> prefix, ReadOnlyMemory<byte> body) : ReadOnlyContentStream
{
    public override long Length => prefix.Length + body.Length;

    public override int Read(Span<byte> buffer)
    {
        var written = 0;
        while (written < buffer.Length && Position < Length)
        {
            var (part, start) = Position < prefix.Length ? (prefix, (int)Position) : (body, (int)(Position - prefix.Length));
            var take = Math.Min(buffer.Length - written, part.Length - start);
            part.Span.Slice(start, take).CopyTo(buffer[written..]);
            written += take;
            Advance(take);
        }

        return written;
    }
}

/// <summary>A read-only, seekable stream of two seekable streams one after the other (a header section in memory, then
/// a body streamed from its buffer or spill file); disposing it disposes both.</summary>
internal sealed class ConcatenatedContentStream(Stream first, Stream second) : ReadOnlyContentStream
{
    public override long Length => first.Length + second.Length;

    public override int Read(Span<byte> buffer)
    {
        var read = Position < first.Length ? first.Read(buffer) : second.Read(buffer);
        Advance(read);
        return read;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = Position < first.Length ? await first.ReadAsync(buffer, cancellationToken) : await second.ReadAsync(buffer, cancellationToken);
        Advance(read);
        return read;
    }

    protected override long MoveTo(long target)
    {
        first.Position = Math.Min(target, first.Length);
        second.Position = Math.Max(0, target - first.Length);
        return target;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            first.Dispose();
            second.Dispose();
        }

        base.Dispose(disposing);
    }
}
