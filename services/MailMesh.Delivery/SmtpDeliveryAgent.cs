using System.Net;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Delivery.Shaping;
using MailMesh.Smtp;
using MailMesh.Smtp.Client;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>The outcome of one attempt: a result per recipient and the server that gave the final answers.</summary>
internal sealed record AttemptOutcome(IReadOnlyList<RecipientResult> Results, string? RemoteHost, string? RemoteAddress, AttemptTls? Tls = null);

/// <summary>
/// Delivers one message to the recipients at one domain over SMTP: tries the exchangers in order, each address in
/// order (RFC 5321 §5.1), and runs the transactions for all the recipients on the first server that will talk.
/// </summary>
/// <remarks>
/// <para>Failover to the next address happens when a server cannot be used at all: connection failure, a non-220
/// greeting (421 or 554, §3.1), a refused EHLO and HELO, a 4xx to MAIL, a connection lost before any recipient
/// got an answer, or a TLS policy the server cannot meet. Once a recipient has an answer, that server's answers stand
/// (RFC 5321 §4.5.4.1 leaves retrying to the queue).</para>
/// <para>TLS (RFC 3207): the destination's <see cref="DeliveryTlsOptions"/> policy applies; a message that carries
/// REQUIRETLS (RFC 8689) always needs a verified session with a server that advertises REQUIRETLS, and when no
/// exchanger offers one it is returned with 550 5.7.30. A TLS policy that is not met defers with 451 4.7.4 (TLS not
/// offered or refused: RFC 3463 "security features not supported") or 451 4.7.5 (handshake or certificate failure:
/// "cryptographic failure"): the destination may fix it, so the queue retries, as Postfix does.</para>
/// <para>8-bit content: a BODY=8BITMIME message sent to a server that does not announce 8BITMIME is sent anyway.
/// RFC 6152 §3 says such a message should be converted or bounced, but converting would break DKIM signatures and
/// practically every server accepts 8-bit bytes: sending as-is is what Postfix, Exim and Sendmail do by default.
/// BINARYMIME cannot travel over DATA at all (RFC 3030 §3), so without CHUNKING and BINARYMIME the message is bounced
/// with 554 5.6.3.</para>
/// <para>Internationalised mail (RFC 6531): SMTPUTF8 is passed when the server offers it and the message needs it.
/// Without it, a domain in U-labels is sent as A-labels (RFC 5890, allowed when the local part is ASCII), while a
/// non-ASCII local part, or a message flagged SMTPUTF8 whose header section is UTF-8 (RFC 6532), is returned with 553
/// 5.6.7 rather than mangled (RFC 6531 §3.2). A flagged message whose envelope and headers are ASCII after all is
/// sent without SMTPUTF8 (Postfix's smtputf8 autodetection does the same).</para>
/// </remarks>
internal sealed class SmtpDeliveryAgent(
    SmtpConnectionPool pool,
    TlsTrust trust,
    IOptions<DeliveryOptions> options,
    TimeProvider time,
    ILogger<SmtpDeliveryAgent> logger,
    Shaper shaper,
    TlsPolicyResolver? tlsPolicies = null)
{
    private readonly DeliveryOptions _options = options.Value;

    /// <param name="signature">A DKIM-Signature header field sent in front of the content (empty: none), see
    /// <see cref="Dkim.MessageSigner"/>; the content itself goes byte for byte as stored.</param>
    /// <param name="site">The destination's traffic-shaping site (null: no shaping): its connection budget, limits and TLS mode.</param>
    /// <param name="source">The pool address every connection of this attempt leaves from (null: the OS's choice); an
    /// exchanger address of the other IP family is skipped.</param>
    public async Task<AttemptOutcome> DeliverAsync(
        string domain, StoredMessage message, IReadOnlyList<DeliveryRecipient> recipients, IReadOnlyList<MxHost> hosts,
        ReadOnlyMemory<byte> signature, Site? site, CancellationToken cancellationToken, Pools.SourceAddress? source = null)
    {
        // RFC 8689 §4.2.1: a REQUIRETLS message needs TLS with a certificate that matches the MX name, whatever the
        // destination's own policy says. A shaping site's TLS mode only ever raises the domain's policy.
        var tlsMode = message.RequireTls ? TlsMode.Verified : _options.Tls.PolicyFor(domain);
        if (site?.Limits.Tls is { } siteTls && siteTls > tlsMode)
        {
            tlsMode = siteTls;
        }

        Failure? lastFailure = null;
        var onlyRequireTlsFailures = true;

        // DANE (RFC 7672) and MTA-STS (RFC 8461): per exchanger, TLS mode and certificate judge, or a refusal.
        var tlsPolicy = tlsPolicies is { IsActive: true } ? await tlsPolicies.ResolveAsync(domain, hosts, tlsMode, cancellationToken) : null;
        var onlyShapingHolds = true;
        foreach (var host in hosts)
        {
            var hostTls = tlsPolicy?.ForHost(host.Name);
            if (hostTls?.Refusal is { } refusal)
            {
                var first = host.Addresses.Count > 0 ? host.Addresses[0] : null;
                tlsPolicies!.Refused(domain, hostTls, host.Name, first);
                lastFailure = new Failure(451, "4.7.5", refusal, host.Name, first);
                onlyRequireTlsFailures = false;
                TlsPolicyLog.HostRefused(logger, host.Name, refusal);
                continue;
            }

            foreach (var addressText in host.Addresses)
            {
                if (!IPAddress.TryParse(addressText, out var address) || (source is not null && source.Address.AddressFamily != address.AddressFamily))
                {
                    continue;
                }

                var destination = new IPEndPoint(address, _options.Port);
                var attempt = await TryServerAsync(host.Name, destination, tlsMode, message, recipients, signature, site, source, cancellationToken, hostTls, domain);
                if (attempt.Results is not null)
                {
                    return new AttemptOutcome(attempt.Results, host.Name, address.ToString(), attempt.Tls);
                }

                lastFailure = attempt.Failure! with { Host = host.Name, Address = address.ToString() };
                onlyRequireTlsFailures &= lastFailure.RequireTls;
                onlyShapingHolds &= lastFailure.Hold is not null;
                DeliveryLog.Failover(logger, host.Name, destination, lastFailure.Text);
            }
        }

        if (message.RequireTls && lastFailure is not null && onlyRequireTlsFailures)
        {
            // RFC 8689 §5: no exchanger could take the message with REQUIRETLS: return it, "550 5.7.30 REQUIRETLS
            // support required". Had any server failed for another (transient) reason, the message waits instead.
            return new AttemptOutcome(
                Bounce(recipients, 550, "5.7.30", $"REQUIRETLS support required: {lastFailure.Host}[{lastFailure.Address}]: {lastFailure.Text}"),
                lastFailure.Host,
                lastFailure.Address);
        }

        if (lastFailure?.Hold is { } hold && onlyShapingHolds)
        {
            // Traffic shaping gave no connection to any exchanger: nothing was attempted, so none is counted.
            return new AttemptOutcome(hold.Results(recipients), null, null);
        }

        // Every server refused or failed: the recipients wait for the next attempt.
        lastFailure ??= new Failure(451, "4.4.4", "no usable mail exchanger address", null, null);
        var code = lastFailure.Code is >= 400 and < 500 ? lastFailure.Code : 451;
        var enhanced = lastFailure.EnhancedCode.StartsWith('4') ? lastFailure.EnhancedCode : "4.4.0";
        var text = lastFailure.Host is null ? lastFailure.Text : $"{lastFailure.Host}[{lastFailure.Address}]: {lastFailure.Text}";
        return new AttemptOutcome(
            recipients.Select(r => Result(r, DeliveryOutcome.Deferred, code, enhanced, text)).ToList(),
            lastFailure.Host,
            lastFailure.Address);
    }

    /// <summary>One server: results when it gave answers, or the failure that sends us to the next one.</summary>
    private async Task<(IReadOnlyList<RecipientResult>? Results, Failure? Failure, AttemptTls? Tls)> TryServerAsync(
        string hostName, IPEndPoint destination, TlsMode tlsMode, StoredMessage message, IReadOnlyList<DeliveryRecipient> recipients,
        ReadOnlyMemory<byte> signature, Site? site, Pools.SourceAddress? source, CancellationToken cancellationToken, HostTls? hostTls = null, string? domain = null)
    {
        if (hostTls is not null && !message.RequireTls)
        {
            tlsMode = hostTls.Mode;
        }

        SmtpConnectionPool.PoolLease lease;
        try
        {
            lease = await pool.AcquireAsync(destination, ConnectionKey.For(tlsMode, hostName) with { Source = source?.Address }, cancellationToken);
        }
        catch (ConnectionSlotTimeoutException ex)
        {
            // RFC 3463 §3.5: 4.4.5 system congestion; the next address, or the next attempt, may do better.
            return (null, new Failure(451, "4.4.5", ex.Message, null, null), null);
        }

        await using var _ = lease;
        if (lease is { Reused: true, Connection: { } pooled })
        {
            try
            {
                // A pooled connection may have been dropped by the server meanwhile; RSET both checks it and
                // clears any state (RFC 5321 §4.1.1.5).
                var rset = await pooled.CommandAsync("RSET", _options.CommandTimeout, "RSET", cancellationToken);
                if (!rset.IsSuccess)
                {
                    pooled.MarkUnusable();
                    await lease.DiscardConnectionAsync();
                }
            }
            catch (SmtpConnectionException ex)
            {
                DeliveryLog.StaleConnection(logger, destination, ex);
                await lease.DiscardConnectionAsync();
            }
        }

        if (lease.Connection is null)
        {
            // Traffic shaping: a new connection takes a slot of the site's connection limit (shared by every replica) and
            // a connection-rate token; the slot goes with the connection and is given back when it closes. While it waits
            // for a slot, a connection of this replica to the same address that goes idle carries this message instead.
            ConnectionTicket? ticket = null;
            if (site is not null)
            {
                (ticket, var hold) = await shaper.BeforeConnectAsync(
                    site, source?.Address.ToString() ?? Shaper.DefaultSourceIp, _options.ConnectionSlotTimeout, () => pool.TryReuseIdleAsync(lease), () => pool.CloseIdleAsync(site.Name, lease), cancellationToken);
                if (hold is not null)
                {
                    return (null, new Failure(451, "4.4.5", hold.Reason, null, null, Hold: hold), null);
                }
            }

            if (lease.Connection is null)
            {
                SmtpConnection? connection;
                Failure? failure;
                try
                {
                    (connection, failure) = await OpenAsync(hostName, destination, tlsMode, message.RequireTls, source, cancellationToken, hostTls?.Trust);
                }
                catch when (ticket is not null)
                {
                    await ticket.DisposeAsync();
                    throw;
                }

                if (hostTls is not null)
                {
                    tlsPolicies!.Opened(domain!, hostTls, hostName, destination.Address, connection, failure?.EnhancedCode);
                }

                if (connection is null)
                {
                    if (ticket is not null)
                    {
                        await ticket.DisposeAsync();
                    }

                    return (null, failure, null);
                }

                pool.Attach(connection, site, ticket);
                lease.Connection = connection;
            }
        }

        var session = lease.Connection;
        var results = new RecipientResult?[recipients.Count];
        var pending = Enumerable.Range(0, recipients.Count).ToList();
        var first = true;
        while (true)
        {
            session.Transactions++;
            var transaction = await RunTransactionAsync(session, message, pending.Select(i => recipients[i]).ToList(), signature, cancellationToken);
            if (transaction.Results is null)
            {
                if (first)
                {
                    return (null, transaction.Failure, null);
                }

                // A further transaction for the recipients left over after "452 too many recipients" could not start:
                // they wait for the next attempt with this server's answer.
                var failure = transaction.Failure!;
                var text = $"{hostName}[{destination.Address}]: {failure.Text}";
                foreach (var i in pending)
                {
                    results[i] = Result(recipients[i], DeliveryOutcome.Deferred, failure.Code is >= 400 and < 500 ? failure.Code : 451,
                        failure.EnhancedCode.StartsWith('4') ? failure.EnhancedCode : "4.0.0", text);
                }

                break;
            }

            for (var j = 0; j < pending.Count; j++)
            {
                results[pending[j]] = transaction.Results[j];
            }

            // RFC 5321 §4.5.3.1.10: recipients refused with "452 too many recipients" go in a further transaction on
            // the same connection, as long as the server took some recipients in this one (so this terminates).
            if (transaction.TooMany.Count == 0 || !transaction.Progress || !session.IsUsable)
            {
                break;
            }

            DeliveryLog.MoreRecipients(logger, destination, transaction.TooMany.Count);
            pending = transaction.TooMany.Select(j => pending[j]).ToList();
            first = false;
        }

        if (session.IsUsable)
        {
            lease.KeepAlive();
        }

        return (results.Select(r => r!).ToList(), null, TlsOf(session, hostTls));
    }

    /// <summary>
    /// The TLS of a session for the attempt's history: protocol and cipher, and how the certificate was verified (DANE by
    /// the exchanger's TLSA records, MTA-STS by an enforced policy, WebPKI by a trusted chain matching the MX name).
    /// </summary>
    internal static AttemptTls TlsOf(SmtpConnection session, HostTls? hostTls) => new()
    {
        Protocol = session.IsTls ? session.TlsProtocol : "none",
        Cipher = session.IsTls ? session.TlsCipher : null,
        Verification = !session.IsTls || !session.IsVerified ? "none"
            : session.IsDaneVerified ? "dane"
            : hostTls is { PolicyType: "sts", Mode: TlsMode.Verified } ? "mta-sts"
            : "webpki",
    };

    /// <summary>
    /// Opens a connection under the TLS policy. Opportunistic TLS whose handshake fails is retried at once in clear
    /// text on a new connection (Postfix behaviour: a broken TLS stack must not stop the mail).
    /// </summary>
    private async Task<(SmtpConnection? Connection, Failure? Failure)> OpenAsync(
        string hostName, IPEndPoint destination, TlsMode tlsMode, bool requireTls, Pools.SourceAddress? source, CancellationToken cancellationToken, TlsTrust? hostTrust = null)
    {
        try
        {
            return await OpenOnceAsync(hostName, destination, tlsMode, source, cancellationToken, hostTrust);
        }
        catch (SmtpConnectionException ex) when (ex.Kind == SmtpFailureKind.TlsFailed && tlsMode == TlsMode.Opportunistic)
        {
            DeliveryLog.TlsFallback(logger, hostName, destination, ex.Message);
        }
        catch (SmtpConnectionException ex)
        {
            return (null, Failure.From(ex, requireTls));
        }

        try
        {
            return await OpenOnceAsync(hostName, destination, TlsMode.None, source, cancellationToken);
        }
        catch (SmtpConnectionException ex)
        {
            return (null, Failure.From(ex, requireTls));
        }
    }

    private async Task<(SmtpConnection? Connection, Failure? Failure)> OpenOnceAsync(
        string hostName, IPEndPoint destination, TlsMode tlsMode, Pools.SourceAddress? source, CancellationToken cancellationToken, TlsTrust? hostTrust = null)
    {
        var (connection, refusal) = await SmtpConnection.OpenAsync(hostName, destination, tlsMode, hostTrust ?? trust, _options, time, cancellationToken, source);
        if (connection is null)
        {
            return (null, Failure.From(refusal!));
        }

        pool.Opened(connection);
        DeliveryLog.Connected(logger, hostName, destination, connection.Greeting?.Text ?? string.Empty, connection.TlsDescription, connection.IsVerified);
        return (connection, null);
    }

    /// <summary>One mail transaction for <paramref name="recipients"/>.</summary>
    private async Task<Transaction> RunTransactionAsync(
        SmtpConnection connection, StoredMessage message, IReadOnlyList<DeliveryRecipient> recipients, ReadOnlyMemory<byte> signature,
        CancellationToken cancellationToken)
    {
        var capabilities = connection.Capabilities;
        var content = message.Content;

        // RFC 8689 §4.2.1: REQUIRETLS goes only to a verified TLS session whose post-TLS EHLO advertised REQUIRETLS.
        if (message.RequireTls && !(connection.IsTls && connection.IsVerified && capabilities.RequireTls))
        {
            // Transient here (another exchanger may offer it); 5.7.30 once none does (RFC 8689 §5).
            return Transaction.Failed(new Failure(451, "4.7.30", "REQUIRETLS was not advertised by the server", null, null, RequireTls: true));
        }

        if (Refuse(message, signature.Length, recipients, capabilities) is { } refused)
        {
            return Transaction.Answered(refused);
        }

        var utf8 = capabilities.SmtpUtf8;
        var results = new RecipientResult?[recipients.Count];
        if (!TryEnvelopeAddress(message.Sender, utf8, out var sender))
        {
            // RFC 6531 §3.2: a non-ASCII local part cannot be sent to a server without SMTPUTF8.
            return Transaction.Answered(Bounce(recipients, 553, "5.6.7", "SMTPUTF8 is required for the non-ASCII sender address, but was not offered by the server"));
        }

        // The recipients that can go to this server, by index into recipients, with their RCPT commands.
        var active = new List<int>();
        var rcpts = new List<string>();
        for (var i = 0; i < recipients.Count; i++)
        {
            if (TryEnvelopeAddress(recipients[i].Address, utf8, out var address))
            {
                active.Add(i);
                rcpts.Add(RcptCommand(address, recipients[i], capabilities));
            }
            else
            {
                results[i] = Result(recipients[i], DeliveryOutcome.Bounced, 553, "5.6.7",
                    "SMTPUTF8 is required for the non-ASCII recipient address, but was not offered by the server");
            }
        }

        if (active.Count == 0)
        {
            return Transaction.Answered(results);
        }

        var mail = MailCommand(sender, message, signature.Length, recipients, capabilities);

        // RFC 3030 §2: with CHUNKING the content goes in BDAT chunks, for every body type (no dot-stuffing, no scan
        // for the end of data); BINARYMIME needs it.
        var chunking = capabilities.Chunking;
        var replies = new ServerReply?[active.Count];
        var answered = false;
        var stage = "MAIL FROM";
        try
        {
            ServerReply mailReply;
            ServerReply? dataReply = null;
            if (capabilities.Pipelining)
            {
                // RFC 2920 §3.1: MAIL, every RCPT and DATA go in one batch; DATA is the last command of the group.
                connection.Write(mail);
                foreach (var rcpt in rcpts)
                {
                    connection.Write(rcpt);
                }

                if (!chunking)
                {
                    connection.Write("DATA");
                }

                await connection.FlushAsync(_options.MailTimeout, "MAIL FROM", cancellationToken);
                mailReply = await connection.ReadReplyAsync(_options.MailTimeout, "MAIL FROM", cancellationToken);
                stage = "RCPT TO";
                for (var i = 0; i < rcpts.Count; i++)
                {
                    replies[i] = await connection.ReadReplyAsync(_options.RcptTimeout, "RCPT TO", cancellationToken);
                    answered |= mailReply.IsSuccess;
                }

                if (!chunking)
                {
                    stage = "DATA";
                    dataReply = await connection.ReadReplyAsync(_options.DataInitiationTimeout, "DATA", cancellationToken);
                }
            }
            else
            {
                mailReply = await connection.CommandAsync(mail, _options.MailTimeout, "MAIL FROM", cancellationToken);
                if (mailReply.IsSuccess)
                {
                    stage = "RCPT TO";
                    for (var i = 0; i < rcpts.Count; i++)
                    {
                        replies[i] = await connection.CommandAsync(rcpts[i], _options.RcptTimeout, "RCPT TO", cancellationToken);
                        answered = true;
                        if (IsTooManyRecipients(replies[i]!))
                        {
                            // RFC 5321 §4.5.3.1.10: the server's limit is reached; the rest go in a further transaction.
                            for (var j = i + 1; j < rcpts.Count; j++)
                            {
                                replies[j] = replies[i];
                            }

                            break;
                        }
                    }
                }
            }

            if (!mailReply.IsSuccess)
            {
                if (dataReply?.Code == 354)
                {
                    await connection.WriteDataAsync(ReadOnlyMemory<byte>.Empty, ReadOnlyMemory<byte>.Empty, _options.DataBlockTimeout, cancellationToken);
                    await connection.ReadReplyAsync(_options.DataTerminationTimeout, "end of data", cancellationToken);
                }

                if (mailReply.IsTransient)
                {
                    // RFC 5321 §4.5.4.1 allows another exchanger for a server that cannot take mail right now.
                    return Transaction.Failed(Failure.From(mailReply));
                }

                foreach (var i in active)
                {
                    results[i] = Result(recipients[i], mailReply, ReplyStage.Mail);
                }

                return Transaction.Answered(results);
            }

            var accepted = new List<int>();
            var tooMany = new List<int>();
            for (var k = 0; k < active.Count; k++)
            {
                var reply = replies[k]!;
                if (reply.IsSuccess)
                {
                    accepted.Add(active[k]);
                    continue;
                }

                results[active[k]] = IsTooManyRecipients(reply)
                    ? Result(recipients[active[k]], DeliveryOutcome.Deferred, 452, "4.5.3", reply.Text)
                    : Result(recipients[active[k]], reply, ReplyStage.Rcpt);
                if (IsTooManyRecipients(reply))
                {
                    tooMany.Add(active[k]);
                }
            }

            if (accepted.Count == 0)
            {
                // RFC 2920 §3.1: a server that accepted DATA without recipients gets an empty message, rejected at end.
                if (dataReply?.Code == 354)
                {
                    await connection.WriteDataAsync(ReadOnlyMemory<byte>.Empty, ReadOnlyMemory<byte>.Empty, _options.DataBlockTimeout, cancellationToken);
                    await connection.ReadReplyAsync(_options.DataTerminationTimeout, "end of data", cancellationToken);
                }

                return Transaction.Answered(results, tooMany, progress: false);
            }

            ServerReply final;
            if (chunking)
            {
                stage = "BDAT";
                final = await connection.SendBdatAsync(signature, content, _options.DataBlockTimeout, _options.DataTerminationTimeout, cancellationToken);
                if (!final.IsSuccess)
                {
                    // RFC 3030 §2: a refused chunk ends the transaction; RSET puts the session back in a known state
                    // for the next transaction (the server may still be expecting chunks).
                    var rset = await connection.CommandAsync("RSET", _options.CommandTimeout, "RSET", cancellationToken);
                    if (!rset.IsSuccess)
                    {
                        connection.MarkUnusable();
                    }
                }
            }
            else
            {
                if (dataReply is null)
                {
                    stage = "DATA";
                    dataReply = await connection.CommandAsync("DATA", _options.DataInitiationTimeout, "DATA", cancellationToken);
                }

                if (dataReply.Code != 354)
                {
                    final = dataReply;
                }
                else
                {
                    stage = "message data";
                    await connection.WriteDataAsync(signature, content, _options.DataBlockTimeout, cancellationToken);

                    // The final "." is out: the message may be delivered, so nothing cancels the wait for the reply that
                    // says whether it was (a lost lease or a shutdown would only turn a delivery into a duplicate).
                    stage = "end of data";
                    final = await connection.ReadReplyAsync(_options.DataTerminationTimeout, "end of data", CancellationToken.None);
                }
            }

            // RFC 5321 §4.2.5 / §3.3: the reply to the end of data applies to every accepted recipient.
            foreach (var i in accepted)
            {
                results[i] = Result(recipients[i], final, ReplyStage.Data);
            }

            return Transaction.Answered(results, tooMany, progress: true);
        }
        catch (SmtpConnectionException ex)
        {
            if (!answered)
            {
                return Transaction.Failed(Failure.From(ex, requireTls: false));
            }

            // Recipients already refused keep their answer; the rest wait (a lost reply to the final dot may
            // mean the message was delivered: the retry may duplicate it, as in every MTA, RFC 5321 §6.1).
            var failure = Failure.From(ex, requireTls: false);
            var text = $"{connection.HostName}[{connection.RemoteEndPoint.Address}]: {failure.Text} (during {stage})";
            for (var k = 0; k < active.Count; k++)
            {
                var i = active[k];
                results[i] = replies[k] is { IsSuccess: false } reply && !IsTooManyRecipients(reply)
                    ? Result(recipients[i], reply, ReplyStage.Rcpt)
                    : Result(recipients[i], DeliveryOutcome.Deferred, 451, failure.EnhancedCode, text);
            }

            return Transaction.Answered(results);
        }
    }

    /// <summary>
    /// RFC 5321 §4.5.3.1.10: "452 too many recipients" (RFC 3463 4.5.3); §4.5.3.1.10 also asks clients to treat the
    /// RFC 821 "552" form of it as temporary, recognisable by its 5.5.3 enhanced code.
    /// </summary>
    private static bool IsTooManyRecipients(ServerReply reply) =>
        (reply.Code == 452 && reply.EnhancedCode is null or "4.5.3") || (reply.Code == 552 && reply.EnhancedCode == "5.5.3");

    /// <summary>Checks the server can take this message at all; a list of bounces when it cannot.</summary>
    private static List<RecipientResult>? Refuse(StoredMessage message, int signatureLength, IReadOnlyList<DeliveryRecipient> recipients, EhloCapabilities capabilities)
    {
        // RFC 3030 §3: BINARYMIME content cannot be sent with DATA.
        if (message.BodyType == BodyType.BinaryMime && !(capabilities.Chunking && capabilities.BinaryMime))
        {
            return Bounce(recipients, 554, "5.6.3", "Message requires BINARYMIME (RFC 3030), which the server does not support");
        }

        // RFC 1870 §6: a message over the server's fixed maximum is not sent.
        if (capabilities.SizeLimit is { } limit && message.Content.Length + signatureLength > limit)
        {
            return Bounce(recipients, 552, "5.3.4", $"Message size {message.Content.Length + signatureLength} exceeds the server's fixed maximum of {limit}");
        }

        // RFC 6531 §3.2 / RFC 6532: a message with UTF-8 header fields needs SMTPUTF8 at the server; it is not
        // downgraded (that would change signed headers).
        if (message.SmtpUtf8 && !capabilities.SmtpUtf8 && !Ascii.IsValid(HeaderSection(message.Content.Span)))
        {
            return Bounce(recipients, 553, "5.6.7", "SMTPUTF8 is required for the UTF-8 header fields, but was not offered by the server");
        }

        return null;
    }

    /// <summary>The header section: everything up to the first empty line (RFC 5322 §2.1).</summary>
    private static ReadOnlySpan<byte> HeaderSection(ReadOnlySpan<byte> content)
    {
        if (content.StartsWith("\r\n"u8))
        {
            return [];
        }

        var end = content.IndexOf("\r\n\r\n"u8);
        return end < 0 ? content : content[..end];
    }

    /// <summary>
    /// The envelope address as it goes to this server: as stored when it is ASCII or the server has SMTPUTF8; with
    /// the domain converted to A-labels (RFC 5890 §2.3.2.1, IDNA2008 via UTS #46) when only the domain is non-ASCII;
    /// false when the local part is non-ASCII and the server lacks SMTPUTF8 (RFC 6531 §3.2: it cannot be sent).
    /// </summary>
    internal static bool TryEnvelopeAddress(string address, bool smtpUtf8, out string wire)
    {
        wire = address;
        if (smtpUtf8 || Ascii.IsValid(address))
        {
            return true;
        }

        var at = address.LastIndexOf('@');
        if (at <= 0 || !Ascii.IsValid(address.AsSpan(0, at)))
        {
            return false;
        }

        try
        {
            wire = string.Concat(address.AsSpan(0, at + 1), NormalizedAddress.NormalizeDomain(address[(at + 1)..]));
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static List<RecipientResult> Bounce(IReadOnlyList<DeliveryRecipient> recipients, int code, string enhanced, string text) =>
        recipients.Select(r => Result(r, DeliveryOutcome.Bounced, code, enhanced, text)).ToList();

    private static string MailCommand(string sender, StoredMessage message, int signatureLength, IReadOnlyList<DeliveryRecipient> recipients, EhloCapabilities capabilities)
    {
        var command = new StringBuilder("MAIL FROM:<").Append(sender).Append('>');
        if (capabilities.Size)
        {
            // RFC 1870 §3: the declared size lets the server refuse early.
            command.Append(" SIZE=").Append(message.Content.Length + signatureLength);
        }

        switch (message.BodyType)
        {
            case BodyType.EightBitMime when capabilities.EightBitMime:
                // RFC 6152 §2.
                command.Append(" BODY=8BITMIME");
                break;
            case BodyType.BinaryMime:
                command.Append(" BODY=BINARYMIME");
                break;
        }

        // RFC 6531 §3.4: SMTPUTF8 when the message or its envelope is internationalised and the server offers it.
        if (capabilities.SmtpUtf8 && (message.SmtpUtf8 || !Ascii.IsValid(message.Sender) || recipients.Any(r => !Ascii.IsValid(r.Address))))
        {
            command.Append(" SMTPUTF8");
        }

        if (message.RequireTls)
        {
            // RFC 8689 §4.1: only sent after the checks of §4.2.1 passed (verified TLS, REQUIRETLS advertised).
            command.Append(" REQUIRETLS");
        }

        if (capabilities.Dsn)
        {
            // RFC 3461 §4.3, §4.4: RET as stored ("FULL"/"HDRS"); ENVID is stored decoded and goes as xtext. Without
            // DSN at the server they are dropped (§4.3: the relay then reports "relayed" itself, which Queue does).
            if (message.Ret is not null)
            {
                command.Append(" RET=").Append(message.Ret);
            }

            if (message.EnvelopeId is not null)
            {
                command.Append(" ENVID=").Append(DsnEncoding.EnvelopeId(message.EnvelopeId));
            }
        }

        return command.ToString();
    }

    private static string RcptCommand(string address, DeliveryRecipient recipient, EhloCapabilities capabilities)
    {
        var command = new StringBuilder("RCPT TO:<").Append(address).Append('>');
        if (capabilities.Dsn)
        {
            // RFC 3461 §4.1: NOTIFY as stored (its keywords need no encoding); §4.2: ORCPT re-encoded as xtext.
            if (recipient.Notify is not null)
            {
                command.Append(" NOTIFY=").Append(recipient.Notify);
            }

            if (recipient.OriginalRecipient is not null)
            {
                command.Append(" ORCPT=").Append(DsnEncoding.OriginalRecipient(recipient.OriginalRecipient));
            }
        }

        return command.ToString();
    }

    /// <summary>A recipient's result from the server's own reply, marked with the command it answered.</summary>
    private static RecipientResult Result(DeliveryRecipient recipient, ServerReply reply, ReplyStage stage) =>
        Result(
            recipient,
            reply.IsSuccess ? DeliveryOutcome.Delivered : reply.IsPermanent ? DeliveryOutcome.Bounced : DeliveryOutcome.Deferred,
            reply.Code,
            reply.EnhancedCodeOrDefault,
            reply.Text,
            stage);

    /// <summary>A recipient's result; <paramref name="stage"/> Local when MailMesh made the reply up (no server said it).</summary>
    internal static RecipientResult Result(
        DeliveryRecipient recipient, DeliveryOutcome outcome, int code, string enhancedCode, string text, ReplyStage stage = ReplyStage.Local) =>
        new()
        {
            RecipientId = recipient.RecipientId,
            Address = recipient.Address,
            Outcome = outcome,
            ReplyCode = code,
            EnhancedCode = enhancedCode,
            ReplyText = text,
            Stage = stage,
        };

    /// <summary>
    /// One transaction: results for its recipients (in order), or the failure that makes the server unusable; the
    /// indexes of recipients refused with "too many recipients", and whether any recipient was accepted.
    /// </summary>
    private sealed record Transaction(IReadOnlyList<RecipientResult>? Results, Failure? Failure, IReadOnlyList<int> TooMany, bool Progress)
    {
        public static Transaction Failed(Failure failure) => new(null, failure, [], false);

        public static Transaction Answered(IReadOnlyList<RecipientResult?> results, IReadOnlyList<int>? tooMany = null, bool progress = false) =>
            new(results.Select(r => r!).ToList(), null, tooMany ?? [], progress);
    }

    /// <summary>Why one server could not be used; <see cref="RequireTls"/> when only REQUIRETLS/TLS stood in the way.</summary>
    private sealed record Failure(int Code, string EnhancedCode, string Text, string? Host, string? Address, bool RequireTls = false, ShapingHold? Hold = null)
    {
        public static Failure From(ServerReply reply) => new(reply.Code, reply.EnhancedCodeOrDefault, reply.ToString(), null, null);

        public static Failure From(SmtpConnectionException ex, bool requireTls) => ex.Kind switch
        {
            SmtpFailureKind.ConnectFailed => new(451, "4.4.1", ex.Message, null, null),
            SmtpFailureKind.ProtocolError => new(451, "4.5.0", ex.Message, null, null),
            SmtpFailureKind.TlsNotOffered => new(451, "4.7.4", ex.Message, null, null, requireTls),
            SmtpFailureKind.TlsFailed => new(451, "4.7.5", ex.Message, null, null, requireTls),
            _ => new(451, "4.4.2", ex.Message, null, null),
        };
    }
}
