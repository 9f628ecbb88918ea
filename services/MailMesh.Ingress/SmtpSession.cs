using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using MailMesh.Contracts;
using MailMesh.Ingress.Acceptance;
using MailMesh.Smtp;
using MailMesh.Storage;
using Microsoft.AspNetCore.Connections;

namespace MailMesh.Ingress;

/// <summary>
/// One SMTP server session (RFC 5321) over a Kestrel connection. Reads with System.IO.Pipelines, parses with
/// MailMesh.Smtp, asks Policy inline and commits accepted mail to the spool before answering 250.
/// PIPELINING (RFC 2920): every complete command in the input buffer is processed and answered into the output
/// pipe, which is flushed only when the buffer is drained (or before waiting for message content after 354).
/// </summary>
internal sealed class SmtpSession
{
    private readonly ConnectionContext _connection;
    private readonly IngressOptions _options;
    private readonly IngressPolicy _policy;
    private readonly MessageAcceptor _acceptor;
    private readonly IngressMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly IPEndPoint? _client;
    private readonly string _clientAddress;
    private readonly SmtpDataReader _data;
    private readonly List<NewRecipient> _recipients = [];

    private SmtpLineReader _lines;
    private SmtpState _state = SmtpState.Connected;
    private string? _helo;
    private bool _esmtp;
    private int _errors;
    private Activity? _sessionActivity;

    // The mail transaction (MAIL to end of DATA).
    private string _sender = string.Empty;
    private MailParameters _mailParameters = MailParameters.None;
    private Activity? _transaction;
    private ArrayBufferWriter<byte>? _content;
    private int _bodyOffset;
    private Guid _messageId;
    private DateTimeOffset _receivedAt;

    public SmtpSession(
        ConnectionContext connection,
        IngressOptions options,
        IngressPolicy policy,
        MessageAcceptor acceptor,
        IngressMetrics metrics,
        TimeProvider time,
        ILogger logger,
        CancellationToken stopping)
    {
        _connection = connection;
        _options = options;
        _policy = policy;
        _acceptor = acceptor;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _stopping = stopping;
        _input = connection.Transport.Input;
        _output = connection.Transport.Output;
        _client = connection.RemoteEndPoint as IPEndPoint;
        var address = _client?.Address;
        if (address is not null && address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        _clientAddress = address?.ToString() ?? "unknown";
        _lines = new SmtpLineReader(options.MaxCommandLineLength);
        _data = new SmtpDataReader(
            options.MaxMessageSize,
            options.MaxTextLineLength,
            options.NormalizeBareLineFeeds ? BareLineEndingHandling.Normalize : BareLineEndingHandling.Reject);
    }

    private string HostName => _options.HostName;

    private IPAddress? ClientIp => _client?.Address is { IsIPv4MappedToIPv6: true } mapped ? mapped.MapToIPv4() : _client?.Address;

    public async Task RunAsync()
    {
        _metrics.SessionStarted();
        using var activity = _sessionActivity = IngressTelemetry.Source.StartActivity("smtp.session", ActivityKind.Server);
        activity?.SetTag("client.address", _clientAddress);
        activity?.SetTag("client.port", _client?.Port);
        activity?.SetTag("server.address", HostName);
        Log.SessionStarted(_logger, _client);

        // One timer for every read; it also fires when the connection closes or the host stops.
        using var readTimeout = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
        using var closed = _connection.ConnectionClosed.Register(static s => ((CancellationTokenSource)s!).Cancel(), readTimeout);
        using var stopping = _stopping.Register(static s => ((CancellationTokenSource)s!).Cancel(), readTimeout);
        try
        {
            if (await GreetAsync())
            {
                await ReadLoopAsync(readTimeout);
            }
        }
        catch (OperationCanceledException) when (readTimeout.IsCancellationRequested)
        {
            if (_stopping.IsCancellationRequested)
            {
                await CloseWithAsync(SmtpReplies.ServiceNotAvailable(HostName, EnhancedStatusCodes.SystemNotAccepting, "Service shutting down"));
            }
            else if (!_connection.ConnectionClosed.IsCancellationRequested)
            {
                // RFC 5321 §4.5.3.2: the server may close after its timeout; say why first.
                Log.SessionTimedOut(_logger, _client);
                activity?.SetTag("error.type", "timeout");
                await CloseWithAsync(SmtpReplies.ServiceNotAvailable(HostName, EnhancedStatusCodes.Timeout, "Timeout exceeded, closing connection"));
            }
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException)
        {
            Log.ConnectionLost(_logger, _client, ex);
        }
        catch (Exception ex)
        {
            Log.SessionFailed(_logger, _client, ex);
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            await CloseWithAsync(SmtpReplies.ServiceNotAvailable(HostName, EnhancedStatusCodes.TransientSystemError, "Local error, closing connection"));
        }
        finally
        {
            EndTransaction("aborted");
            _metrics.SessionEnded();
            Log.SessionEnded(_logger, _client);
            await _input.CompleteAsync();
            await _output.CompleteAsync();
        }
    }

    /// <summary>Asks Policy about the client, then sends 220 (RFC 5321 §4.3.1) or the refusal.</summary>
    private async Task<bool> GreetAsync()
    {
        var decision = await CheckPolicyAsync("connection", ct => _policy.CheckAsync(new CheckConnection { ClientAddress = _clientAddress }, ct));
        if (decision.Reply is not null)
        {
            // A refused or unchecked connection is answered and closed (RFC 5321 §3.1 allows 554 instead of 220;
            // 421 when Policy cannot answer).
            var reply = decision.Failed
                ? SmtpReplies.ServiceNotAvailable(HostName, EnhancedStatusCodes.TransientSystemError, "Service temporarily unavailable, try again later")
                : decision.Reply;
            await CloseWithAsync(reply);
            return false;
        }

        Write(new SmtpReply(220, null, HostName + " ESMTP MailMesh"));
        await _output.FlushAsync(_stopping);
        return true;
    }

    private async Task ReadLoopAsync(CancellationTokenSource readTimeout)
    {
        while (true)
        {
            readTimeout.CancelAfter(_state == SmtpState.Data ? _options.DataBlockTimeout : _options.CommandTimeout);
            var result = await _input.ReadAsync(readTimeout.Token);
            readTimeout.CancelAfter(Timeout.InfiniteTimeSpan);
            if (readTimeout.IsCancellationRequested)
            {
                throw new OperationCanceledException(readTimeout.Token);
            }

            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var close = false;
            try
            {
                while (!close)
                {
                    if (_state == SmtpState.Data)
                    {
                        if (!ReadContent(buffer.Slice(consumed), ref consumed))
                        {
                            break;
                        }

                        close = await EndOfDataAsync();
                    }
                    else
                    {
                        var status = ReadCommand(buffer.Slice(consumed), ref consumed, out var command, out var error);
                        if (status == LineStatus.NeedMore)
                        {
                            break;
                        }

                        close = command is not null ? await ExecuteAsync(command) : ProtocolError(error!);
                    }
                }

                if (!close && result.IsCompleted)
                {
                    // The client went away without QUIT (possibly mid-message: nothing is stored).
                    close = true;
                }
            }
            finally
            {
                _input.AdvanceTo(consumed, buffer.End);
            }

            // RFC 2920 §3.1: replies to a pipelined group are sent when the input is drained.
            var flush = await _output.FlushAsync(_stopping);
            if (close || flush.IsCompleted)
            {
                return;
            }
        }
    }

    private LineStatus ReadCommand(ReadOnlySequence<byte> buffer, ref SequencePosition consumed, out SmtpCommand? command, out SmtpReply? error)
    {
        command = null;
        error = null;
        var reader = new SequenceReader<byte>(buffer);
        var status = _lines.TryReadLine(ref reader, out var line);
        consumed = reader.Position;
        switch (status)
        {
            case LineStatus.Line:
                if (!SmtpCommandParser.TryParse(line, out command, out error))
                {
                    return LineStatus.Line;
                }

                break;
            case LineStatus.TooLong:
                error = SmtpReplies.LineTooLong;
                break;
            case LineStatus.BareLineEnding:
                error = SmtpReplies.BareLineEnding;
                break;
        }

        return status;
    }

    private bool ReadContent(ReadOnlySequence<byte> buffer, ref SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(buffer);
        var done = _data.TryRead(ref reader, _content);
        consumed = reader.Position;
        return done;
    }

    /// <summary>Runs one command; returns true when the session must close.</summary>
    private async Task<bool> ExecuteAsync(SmtpCommand command)
    {
        if (command.Kind is SmtpCommandKind.StartTls or SmtpCommandKind.Auth or SmtpCommandKind.Bdat or SmtpCommandKind.Expn)
        {
            // Recognised but not offered in EHLO (STARTTLS, AUTH and CHUNKING come with a later issue).
            return ProtocolError(SmtpReplies.NotImplemented);
        }

        if (SmtpStateTable.Check(_state, command.Kind) is { } refusal)
        {
            return ProtocolError(refusal);
        }

        switch (command.Kind)
        {
            case SmtpCommandKind.Helo:
            case SmtpCommandKind.Ehlo:
                EndTransaction(null);
                _helo = command.ClientName;
                _esmtp = command.Kind == SmtpCommandKind.Ehlo;
                _state = SmtpState.Greeted;
                Write(_esmtp ? EhloReply() : new SmtpReply(250, null, HostName));
                return false;
            case SmtpCommandKind.Mail:
                return Mail(command);
            case SmtpCommandKind.Rcpt:
                return await RcptAsync(command);
            case SmtpCommandKind.Data:
                StartData();
                return false;
            case SmtpCommandKind.Rset:
                // RFC 5321 §4.1.1.5: abort the transaction; the greeting stays.
                EndTransaction(null);
                if (_state != SmtpState.Connected)
                {
                    _state = SmtpState.Greeted;
                }

                Write(SmtpReplies.Ok);
                return false;
            case SmtpCommandKind.Noop:
                Write(SmtpReplies.Ok);
                return false;
            case SmtpCommandKind.Vrfy:
                Write(SmtpReplies.CannotVerify);
                return false;
            case SmtpCommandKind.Help:
                Write(SmtpReplies.Help);
                return false;
            case SmtpCommandKind.Quit:
                Write(SmtpReplies.Closing(HostName));
                return true;
            default:
                return ProtocolError(SmtpReplies.UnknownCommand);
        }
    }

    private SmtpReply EhloReply() => new(
        250,
        null,
        HostName + " greets " + (_helo ?? _clientAddress),
        "PIPELINING",
        "SIZE " + _options.MaxMessageSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        "8BITMIME",
        "ENHANCEDSTATUSCODES");

    private bool Mail(SmtpCommand command)
    {
        if (!MailParameters.TryParse(command.Parameters, out var parameters, out var error))
        {
            return ProtocolError(error);
        }

        if (parameters.Body == SmtpBodyType.BinaryMime)
        {
            return ProtocolError(SmtpReplies.BinaryMimeUnsupported);
        }

        if (parameters.Size > _options.MaxMessageSize)
        {
            // RFC 1870 §6.2: a declared size over the fixed limit is refused at MAIL with 552.
            Write(SmtpReplies.MessageTooBig);
            return false;
        }

        _sender = command.IsNullPath ? string.Empty : command.Mailbox!.Address;
        _mailParameters = parameters;
        _recipients.Clear();
        _state = SmtpState.MailGiven;
        _transaction = IngressTelemetry.Source.StartActivity("smtp.transaction", ActivityKind.Internal, _sessionActivity?.Context ?? default);
        _transaction?.SetTag("mailmesh.sender", _sender);
        Write(SmtpReplies.SenderOk);
        return false;
    }

    private async Task<bool> RcptAsync(SmtpCommand command)
    {
        if (command.Parameters.Count > 0)
        {
            // NOTIFY/ORCPT (RFC 3461) are not advertised yet.
            return ProtocolError(SmtpReplies.UnknownParameter);
        }

        if (_recipients.Count >= _options.MaxRecipients)
        {
            Write(SmtpReplies.TooManyRecipients);
            return false;
        }

        // RFC 5321 §4.1.1.3: <Postmaster> without a domain is this server's postmaster.
        var address = command.IsPostmaster ? "postmaster@" + HostName.ToLowerInvariant() : command.Mailbox!.Address;
        if (_recipients.Exists(r => string.Equals(r.Address, address, StringComparison.Ordinal)))
        {
            // A duplicate is acknowledged and delivered once.
            Write(SmtpReplies.RecipientOk);
            return false;
        }

        var decision = await CheckPolicyAsync("recipient", ct => _policy.CheckAsync(
            new CheckRecipient
            {
                ClientAddress = _clientAddress,
                Sender = _sender,
                Recipient = address,
                AcceptedRecipients = _recipients.Count,
            },
            ct));
        if (decision.Reply is not null)
        {
            Write(decision.Reply);
            return false;
        }

        _recipients.Add(new NewRecipient { Address = address });
        _state = SmtpState.RcptGiven;
        Write(SmtpReplies.RecipientOk);
        return false;
    }

    private void StartData()
    {
        _messageId = Guid.CreateVersion7();
        _receivedAt = _time.GetUtcNow();
        _transaction?.SetTag("mailmesh.message.id", _messageId.ToString());

        // Pre-size from the declared SIZE (RFC 1870), never beyond the limit.
        var expected = (int)Math.Min(_mailParameters.Size ?? 16 * 1024, _options.MaxMessageSize) + 512;
        _content = new ArrayBufferWriter<byte>(expected);
        ReceivedHeader.Write(
            _content,
            _helo,
            ClientIp,
            HostName,
            _esmtp ? "ESMTP" : "SMTP",
            _messageId,
            _recipients.Count == 1 ? _recipients[0].Address : null,
            _receivedAt);
        _bodyOffset = _content.WrittenCount;
        _data.Reset();
        _state = SmtpState.Data;
        Write(SmtpReplies.StartMailInput);
    }

    /// <summary>RFC 5321 §4.1.1.4: the end of data ends the transaction whatever the reply.</summary>
    private async Task<bool> EndOfDataAsync()
    {
        _state = SmtpState.Greeted;
        var content = _content!;
        if (_data.Error is { } refusal)
        {
            var errorType = _data.SawBareLineEnding && !_options.NormalizeBareLineFeeds ? "bare_line_ending"
                : _data.SizeExceeded ? "message_too_big"
                : "line_too_long";
            _acceptor.RecordRefusal(MessageOrigin.Smtp, _sender, _clientAddress, refusal, errorType);
            Write(refusal);
            EndTransaction(errorType);
            return false;
        }

        var request = new AcceptRequest
        {
            MessageId = _messageId,
            ReceivedAt = _receivedAt,
            Sender = _sender,
            Recipients = [.. _recipients],
            Content = content.WrittenMemory,
            AddReceivedHeader = false,
            ClientAddress = _clientAddress,
            ClientIp = ClientIp,
            ClientHelo = _helo,
            Origin = MessageOrigin.Smtp,
            BodyType = _mailParameters.Body == SmtpBodyType.EightBitMime || _data.Has8BitData ? BodyType.EightBitMime : BodyType.SevenBit,
            TraceParent = _transaction?.Id,
        };

        // The transaction's span is current while the message is checked, stored and announced.
        var previous = Activity.Current;
        Activity.Current = _transaction ?? previous;
        AcceptResult result;
        try
        {
            result = await _acceptor.AcceptAsync(
                request,
                async (accepted, ct) =>
                {
                    // 250 goes out as soon as the commit returned; the announcement follows.
                    Write(accepted.Reply);
                    await _output.FlushAsync(ct);
                },
                _stopping);
        }
        finally
        {
            Activity.Current = previous;
        }

        if (!result.Accepted || result.Duplicate)
        {
            Write(result.Reply);
        }

        EndTransaction(result.ErrorType);
        return false;
    }

    private async Task<(SmtpReply? Reply, bool Failed)> CheckPolicyAsync(string check, Func<CancellationToken, Task<PolicyDecision>> ask)
    {
        PolicyDecision decision;
        try
        {
            decision = await ask(_stopping);
        }
        catch (Exception ex)
        {
            // ARCHITECTURE.md "Never accept unchecked": no answer in time is a 4xx, never an acceptance.
            Log.PolicyUnavailable(_logger, check, _clientAddress, ex);
            return (SmtpReplies.TemporaryFailure, true);
        }

        if (decision.Accepted)
        {
            return (null, false);
        }

        var reply = PolicyReplies.ToReply(decision);
        Log.PolicyRefused(_logger, check, _clientAddress, reply.Summary);
        return (reply, false);
    }

    /// <summary>Writes a reply to a command the client got wrong; after too many, 421 4.7.0 and close.</summary>
    private bool ProtocolError(SmtpReply reply)
    {
        Write(reply);
        if (++_errors < _options.MaxErrorsPerSession)
        {
            return false;
        }

        Log.TooManyErrors(_logger, _client, _errors);
        _sessionActivity?.SetTag("error.type", "too_many_errors");
        Write(SmtpReplies.ServiceNotAvailable(HostName, EnhancedStatusCodes.TransientSecurity, "Too many errors, closing connection"));
        return true;
    }

    private void EndTransaction(string? errorType)
    {
        _recipients.Clear();
        _sender = string.Empty;
        _mailParameters = MailParameters.None;
        _content = null;
        if (_transaction is { } transaction)
        {
            if (errorType is not null)
            {
                transaction.SetTag("error.type", errorType);
            }

            transaction.Dispose();
            _transaction = null;
        }
    }

    private void Write(SmtpReply reply) => reply.WriteTo(_output);

    private async Task CloseWithAsync(SmtpReply reply)
    {
        try
        {
            Write(reply);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5), _time);
            await _output.FlushAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException or ConnectionResetException or ObjectDisposedException)
        {
            Log.ConnectionLost(_logger, _client, ex);
        }
    }
}
