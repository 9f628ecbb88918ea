using System.Net;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Smtp.Client;
using MailMesh.Storage;
using Microsoft.Extensions.Options;

namespace MailMesh.Delivery;

/// <summary>The outcome of one attempt: a result per recipient and the server that gave the final answers.</summary>
internal sealed record AttemptOutcome(IReadOnlyList<RecipientResult> Results, string? RemoteHost, string? RemoteAddress);

/// <summary>
/// Delivers one message to the recipients at one domain over SMTP: tries the exchangers in order, each address in
/// order (RFC 5321 §5.1), and runs one transaction for all the recipients on the first server that will talk.
/// </summary>
/// <remarks>
/// <para>Failover to the next address happens when a server cannot be used at all: connection failure, a non-220
/// greeting (421 or 554, §3.1), a refused EHLO and HELO, a 4xx to MAIL, or a connection lost before any recipient
/// got an answer. Once a recipient has an answer, that server's answers stand (RFC 5321 §4.5.4.1 leaves retrying to
/// the queue).</para>
/// <para>8-bit content: a BODY=8BITMIME message sent to a server that does not announce 8BITMIME is sent anyway.
/// RFC 6152 §3 says such a message should be converted or bounced, but converting would break DKIM signatures and
/// practically every server accepts 8-bit bytes: sending as-is is what Postfix (smtp_never_send_ehlo aside),
/// Exim and Sendmail do by default. BINARYMIME cannot travel over DATA at all (RFC 3030 §3), so without CHUNKING and
/// BINARYMIME the message is bounced with 554 5.6.3.</para>
/// </remarks>
internal sealed class SmtpDeliveryAgent(
    SmtpConnectionPool pool,
    IOptions<DeliveryOptions> options,
    TimeProvider time,
    ILogger<SmtpDeliveryAgent> logger)
{
    private readonly DeliveryOptions _options = options.Value;

    public async Task<AttemptOutcome> DeliverAsync(
        StoredMessage message, IReadOnlyList<DeliveryRecipient> recipients, IReadOnlyList<MxHost> hosts, CancellationToken cancellationToken)
    {
        Failure? lastFailure = null;
        foreach (var host in hosts)
        {
            foreach (var addressText in host.Addresses)
            {
                if (!IPAddress.TryParse(addressText, out var address))
                {
                    continue;
                }

                var destination = new IPEndPoint(address, _options.Port);
                var attempt = await TryServerAsync(host.Name, destination, message, recipients, cancellationToken);
                if (attempt.Results is not null)
                {
                    return new AttemptOutcome(attempt.Results, host.Name, address.ToString());
                }

                lastFailure = attempt.Failure! with { Host = host.Name, Address = address.ToString() };
                DeliveryLog.Failover(logger, host.Name, destination, lastFailure.Text);
            }
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
    private async Task<(IReadOnlyList<RecipientResult>? Results, Failure? Failure)> TryServerAsync(
        string hostName, IPEndPoint destination, StoredMessage message, IReadOnlyList<DeliveryRecipient> recipients, CancellationToken cancellationToken)
    {
        await using var lease = await pool.AcquireAsync(destination, cancellationToken);
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
            try
            {
                var (connection, refusal) = await SmtpConnection.OpenAsync(hostName, destination, _options, time, cancellationToken);
                if (connection is null)
                {
                    return (null, Failure.From(refusal!));
                }

                pool.Opened(connection);
                DeliveryLog.Connected(logger, hostName, destination, connection.Greeting?.Text ?? string.Empty);
                lease.Connection = connection;
            }
            catch (SmtpConnectionException ex)
            {
                return (null, Failure.From(ex));
            }
        }

        var session = lease.Connection;
        session.Transactions++;
        var transaction = await RunTransactionAsync(session, message, recipients, cancellationToken);
        if (transaction.Results is not null && session.IsUsable)
        {
            lease.KeepAlive();
        }

        return transaction;
    }

    private async Task<(IReadOnlyList<RecipientResult>? Results, Failure? Failure)> RunTransactionAsync(
        SmtpConnection connection, StoredMessage message, IReadOnlyList<DeliveryRecipient> recipients, CancellationToken cancellationToken)
    {
        var capabilities = connection.Capabilities;
        var content = message.Content;

        if (Refuse(message, recipients, capabilities) is { } refused)
        {
            return (refused, null);
        }

        var mail = MailCommand(message, capabilities);
        var rcpts = recipients.Select(r => RcptCommand(r, capabilities)).ToList();
        var chunking = message.BodyType == BodyType.BinaryMime;
        var replies = new ServerReply?[recipients.Count];
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
                        if (replies[i]!.Code == 452 && replies[i]!.EnhancedCode is "4.5.3" or null)
                        {
                            // RFC 5321 §4.5.3.1.10: too many recipients; the rest go in a later transaction.
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
                    await connection.WriteDataAsync(ReadOnlyMemory<byte>.Empty, _options.DataBlockTimeout, cancellationToken);
                    await connection.ReadReplyAsync(_options.DataTerminationTimeout, "end of data", cancellationToken);
                }

                if (mailReply.IsTransient)
                {
                    // RFC 5321 §4.5.4.1 allows another exchanger for a server that cannot take mail right now.
                    return (null, Failure.From(mailReply));
                }

                return (recipients.Select(r => Result(r, mailReply)).ToList(), null);
            }

            var accepted = new List<int>();
            for (var i = 0; i < replies.Length; i++)
            {
                if (replies[i]!.IsSuccess)
                {
                    accepted.Add(i);
                }
            }

            var results = new RecipientResult[recipients.Count];
            for (var i = 0; i < replies.Length; i++)
            {
                if (!replies[i]!.IsSuccess)
                {
                    results[i] = Result(recipients[i], replies[i]!);
                }
            }

            if (accepted.Count == 0)
            {
                // RFC 2920 §3.1: a server that accepted DATA without recipients gets an empty message, rejected at end.
                if (dataReply?.Code == 354)
                {
                    await connection.WriteDataAsync(ReadOnlyMemory<byte>.Empty, _options.DataBlockTimeout, cancellationToken);
                    await connection.ReadReplyAsync(_options.DataTerminationTimeout, "end of data", cancellationToken);
                }

                return (results, null);
            }

            ServerReply final;
            if (chunking)
            {
                stage = "BDAT";
                await connection.WriteBdatAsync(content, _options.DataBlockTimeout, cancellationToken);
                final = await connection.ReadReplyAsync(_options.DataTerminationTimeout, "BDAT", cancellationToken);
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
                    await connection.WriteDataAsync(content, _options.DataBlockTimeout, cancellationToken);
                    stage = "end of data";
                    final = await connection.ReadReplyAsync(_options.DataTerminationTimeout, "end of data", cancellationToken);
                }
            }

            // RFC 5321 §4.2.5 / §3.3: the reply to the end of data applies to every accepted recipient.
            foreach (var i in accepted)
            {
                results[i] = Result(recipients[i], final);
            }

            return (results, null);
        }
        catch (SmtpConnectionException ex)
        {
            if (!answered)
            {
                return (null, Failure.From(ex));
            }

            // Recipients already refused keep their answer; the rest wait (a lost reply to the final dot may
            // mean the message was delivered: the retry may duplicate it, as in every MTA, RFC 5321 §6.1).
            var failure = Failure.From(ex);
            var text = $"{connection.HostName}[{connection.RemoteEndPoint.Address}]: {failure.Text} (during {stage})";
            return (recipients
                .Select((r, i) => replies[i] is { IsSuccess: false } reply
                    ? Result(r, reply)
                    : Result(r, DeliveryOutcome.Deferred, 451, failure.EnhancedCode, text))
                .ToList(), null);
        }
    }

    /// <summary>Checks the server can take this message at all; a list of bounces when it cannot.</summary>
    private static List<RecipientResult>? Refuse(StoredMessage message, IReadOnlyList<DeliveryRecipient> recipients, EhloCapabilities capabilities)
    {
        // RFC 8689 §4.2.1: a REQUIRETLS message must not travel without TLS. Outbound STARTTLS is not implemented
        // yet, so such a message cannot be delivered by this version: it is returned rather than sent in clear text.
        if (message.RequireTls)
        {
            return Bounce(recipients, 550, "5.7.10", "REQUIRETLS support required: TLS to the destination is not available");
        }

        // RFC 3030 §3: BINARYMIME content cannot be sent with DATA.
        if (message.BodyType == BodyType.BinaryMime && !(capabilities.Chunking && capabilities.BinaryMime))
        {
            return Bounce(recipients, 554, "5.6.3", "Message requires BINARYMIME (RFC 3030), which the server does not support");
        }

        // RFC 1870 §6: a message over the server's fixed maximum is not sent.
        if (capabilities.SizeLimit is { } limit && message.Content.Length > limit)
        {
            return Bounce(recipients, 552, "5.3.4", $"Message size {message.Content.Length} exceeds the server's fixed maximum of {limit}");
        }

        // RFC 6531 §3.2: non-ASCII envelope addresses need SMTPUTF8 at the server.
        if (!capabilities.SmtpUtf8 && (!Ascii.IsValid(message.Sender) || recipients.Any(r => !Ascii.IsValid(r.Address))))
        {
            return Bounce(recipients, 553, "5.6.7", "Non-ASCII address and the server does not support SMTPUTF8");
        }

        return null;
    }

    private static List<RecipientResult> Bounce(IReadOnlyList<DeliveryRecipient> recipients, int code, string enhanced, string text) =>
        recipients.Select(r => Result(r, DeliveryOutcome.Bounced, code, enhanced, text)).ToList();

    private static string MailCommand(StoredMessage message, EhloCapabilities capabilities)
    {
        var command = new StringBuilder("MAIL FROM:<").Append(message.Sender).Append('>');
        if (capabilities.Size)
        {
            // RFC 1870 §3: the declared size lets the server refuse early.
            command.Append(" SIZE=").Append(message.Content.Length);
        }

        switch (message.BodyType)
        {
            case BodyType.EightBitMime when capabilities.EightBitMime:
                command.Append(" BODY=8BITMIME");
                break;
            case BodyType.BinaryMime:
                command.Append(" BODY=BINARYMIME");
                break;
        }

        if (message.SmtpUtf8 && capabilities.SmtpUtf8)
        {
            command.Append(" SMTPUTF8");
        }

        if (capabilities.Dsn)
        {
            // RFC 3461 §4.3, §4.4: passed on as received.
            if (message.Ret is not null)
            {
                command.Append(" RET=").Append(message.Ret);
            }

            if (message.EnvelopeId is not null)
            {
                command.Append(" ENVID=").Append(message.EnvelopeId);
            }
        }

        return command.ToString();
    }

    private static string RcptCommand(DeliveryRecipient recipient, EhloCapabilities capabilities)
    {
        var command = new StringBuilder("RCPT TO:<").Append(recipient.Address).Append('>');
        if (capabilities.Dsn)
        {
            // RFC 3461 §4.1, §4.2: passed on as received.
            if (recipient.Notify is not null)
            {
                command.Append(" NOTIFY=").Append(recipient.Notify);
            }

            if (recipient.OriginalRecipient is not null)
            {
                command.Append(" ORCPT=").Append(recipient.OriginalRecipient);
            }
        }

        return command.ToString();
    }

    private static RecipientResult Result(DeliveryRecipient recipient, ServerReply reply) =>
        Result(
            recipient,
            reply.IsSuccess ? DeliveryOutcome.Delivered : reply.IsPermanent ? DeliveryOutcome.Bounced : DeliveryOutcome.Deferred,
            reply.Code,
            reply.EnhancedCodeOrDefault,
            reply.Text);

    internal static RecipientResult Result(DeliveryRecipient recipient, DeliveryOutcome outcome, int code, string enhancedCode, string text) =>
        new()
        {
            RecipientId = recipient.RecipientId,
            Address = recipient.Address,
            Outcome = outcome,
            ReplyCode = code,
            EnhancedCode = enhancedCode,
            ReplyText = text,
        };

    /// <summary>Why one server could not be used.</summary>
    private sealed record Failure(int Code, string EnhancedCode, string Text, string? Host, string? Address)
    {
        public static Failure From(ServerReply reply) => new(reply.Code, reply.EnhancedCodeOrDefault, reply.ToString(), null, null);

        public static Failure From(SmtpConnectionException ex) => ex.Kind switch
        {
            SmtpFailureKind.ConnectFailed => new(451, "4.4.1", ex.Message, null, null),
            SmtpFailureKind.ProtocolError => new(451, "4.5.0", ex.Message, null, null),
            _ => new(451, "4.4.2", ex.Message, null, null),
        };
    }
}
