using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Text;
using MailMesh.Contracts;
using MailMesh.Ingress.Acceptance;
using MailMesh.Ingress.Auth;
using MailMesh.Ingress.Tls;
using MailMesh.Smtp;
using MailMesh.Storage;
using Microsoft.AspNetCore.Connections;

namespace MailMesh.Ingress;

/// <summary>What an SMTP listener is for.</summary>
internal enum ListenerKind
{
    /// <summary>Port 25 style (MX and trusted relay clients): STARTTLS offered, AUTH optional.</summary>
    Relay,

    /// <summary>RFC 6409 submission (587 style): STARTTLS offered, AUTH required before MAIL.</summary>
    Submission,

    /// <summary>RFC 8314 implicit TLS submission (465 style): TLS from the first octet, AUTH required before MAIL.</summary>
    ImplicitTls,
}

/// <summary>The singletons every session uses.</summary>
internal sealed record SmtpSessionServices(
    IngressOptions Options,
    IngressTlsOptions Tls,
    IngressAuthOptions Auth,
    MessageAcceptor Acceptor,
    ServerCertificate Certificate,
    Authenticator Authenticator,
    IngressMetrics Metrics,
    TimeProvider Time,
    ILogger Logger);

/// <summary>
/// One SMTP server session (RFC 5321) over a Kestrel connection. Reads with System.IO.Pipelines, parses with
/// MailMesh.Smtp, asks Policy inline and hands each complete message to <see cref="MessageAcceptor"/>, which commits it
/// to the spool before the 250.
/// PIPELINING (RFC 2920): every complete command in the input buffer is processed and answered into the output
/// pipe, which is flushed only when the buffer is drained (or before waiting for message content after 354).
/// Extensions: STARTTLS (RFC 3207), AUTH PLAIN/LOGIN (RFC 4954, RFC 4616), CHUNKING/BINARYMIME (RFC 3030), DSN
/// (RFC 3461), SMTPUTF8 (RFC 6531), REQUIRETLS (RFC 8689), SIZE (RFC 1870), 8BITMIME (RFC 6152).
/// </summary>
internal sealed class SmtpSession
{
    private readonly ConnectionContext _connection;
    private readonly ListenerKind _kind;
    private readonly IngressOptions _options;
    private readonly SmtpSessionServices _services;
    private readonly IngressPolicy _policy;
    private readonly MessageAcceptor _acceptor;
    private readonly IngressMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationToken _draining;
    private readonly CancellationToken _graceEnded;
    private readonly IPEndPoint? _client;
    private readonly string _clientAddress;
    private readonly SmtpDataReader _data;
    private readonly List<NewRecipient> _recipients = [];

    private PipeReader _input;
    private PipeWriter _output;
    private SslStream? _tls;
    private SmtpLineReader _lines;
    private SmtpState _state = SmtpState.Connected;
    private string? _helo;
    private bool _esmtp;
    private int _errors;
    private string? _authenticatedUser;
    private Activity? _sessionActivity;
    private bool _startTls;
    private bool _rateTooLow;

    // 1 while the session waits for a command with no mail transaction in progress: a graceful stop may close it now.
    private int _idleRead;
    private volatile bool _closedForShutdown;

    // AUTH exchange in progress (RFC 4954 §4): the mechanism and what has been collected so far.
    private string? _authMechanism;
    private string? _authUser;

    // The mail transaction (MAIL to end of DATA / BDAT LAST).
    private string _sender = string.Empty;
    private MailParameters _mailParameters = MailParameters.None;
    private Activity? _transaction;
    private ArrayBufferWriter<byte>? _content;
    private Guid _messageId;
    private DateTimeOffset _receivedAt;

    // Message content pace (MinDataRate) and BDAT chunk state (RFC 3030).
    private long _contentStarted;
    private long _contentOctets;
    private long _chunkRemaining;
    private bool _chunkLast;
    private SmtpReply? _chunkError;
    private string? _chunkErrorType;

    // RFC 3030 §2: a refused BDAT's chunk is read and discarded; this is the reply given once it has been.
    private SmtpReply? _discardReply;

    public SmtpSession(ConnectionContext connection, ListenerKind kind, SmtpSessionServices services, IngressPolicy policy, IngressShutdown shutdown)
    {
        _connection = connection;
        _kind = kind;
        _services = services;
        _options = services.Options;
        _policy = policy;
        _acceptor = services.Acceptor;
        _metrics = services.Metrics;
        _time = services.Time;
        _logger = services.Logger;
        _draining = shutdown.Draining;
        _graceEnded = shutdown.GraceEnded;
        _input = connection.Transport.Input;
        _output = connection.Transport.Output;
        _client = connection.RemoteEndPoint as IPEndPoint;
        _clientAddress = ClientIp?.ToString() ?? "unknown";
        _lines = new SmtpLineReader(_options.MaxCommandLineLength);
        _data = new SmtpDataReader(
            _options.MaxMessageSize,
            _options.MaxTextLineLength,
            _options.NormalizeBareLineFeeds ? BareLineEndingHandling.Normalize : BareLineEndingHandling.Reject);
    }

    private enum Mode
    {
        Command,
        Data,
        Chunk,
        AuthResponse,
    }

    private string HostName => _options.HostName;

    private IPAddress? ClientIp => _client?.Address is { IsIPv4MappedToIPv6: true } mapped ? mapped.MapToIPv4() : _client?.Address;

    private bool IsTls => _tls is not null;

    private bool RequiresAuth => _kind != ListenerKind.Relay;

    private bool StartTlsOffered => !IsTls && _services.Certificate.IsEnabled;

    private bool AuthOffered => _services.Authenticator.HasUsers && (IsTls || _services.Auth.AllowPlaintext);

    private Mode CurrentMode =>
        _state == SmtpState.Data ? Mode.Data
        : _chunkRemaining > 0 ? Mode.Chunk
        : _authMechanism is not null ? Mode.AuthResponse
        : Mode.Command;

    public async Task RunAsync()
    {
        _metrics.SessionStarted();
        using var activity = _sessionActivity = IngressTelemetry.Source.StartActivity("smtp.session", ActivityKind.Server);
        activity?.SetTag("client.address", _clientAddress);
        activity?.SetTag("client.port", _client?.Port);
        activity?.SetTag("server.address", HostName);
        Log.SessionStarted(_logger, _client);

        // One timer for every read; it also fires when the connection closes, when the host starts stopping while the
        // session is idle (see IngressShutdown), and when the shutdown grace period ends.
        using var readTimeout = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
        using var closed = _connection.ConnectionClosed.Register(static s => ((CancellationTokenSource)s!).Cancel(), readTimeout);
        using var graceEnded = _graceEnded.Register(static s => ((CancellationTokenSource)s!).Cancel(), readTimeout);
        using var draining = _draining.Register(
            static s =>
            {
                var (session, timeout) = ((SmtpSession, CancellationTokenSource))s!;
                if (Volatile.Read(ref session._idleRead) == 1)
                {
                    session._closedForShutdown = true;
                    timeout.Cancel();
                }
            },
            (this, readTimeout));
        try
        {
            // RFC 8314 §3.3: on the implicit-TLS port the handshake comes first, then the greeting.
            if ((_kind != ListenerKind.ImplicitTls || await StartTlsAsync()) && await GreetAsync())
            {
                await ReadLoopAsync(readTimeout);
            }
        }
        catch (OperationCanceledException) when (readTimeout.IsCancellationRequested)
        {
            if (_closedForShutdown || _graceEnded.IsCancellationRequested)
            {
                // RFC 5321 §3.8: a server that must shut down answers 421 and closes; the client retries later.
                var interrupted = _state is not (SmtpState.Connected or SmtpState.Greeted);
                Log.ClosedForShutdown(_logger, _client, interrupted);
                activity?.SetTag("error.type", interrupted ? "shutdown_interrupted" : "shutdown");
                await CloseWithAsync(SmtpReplies.ServiceNotAvailable(HostName, EnhancedStatusCodes.SystemNotAccepting, "Service shutting down"));
            }
            else if (!_connection.ConnectionClosed.IsCancellationRequested)
            {
                // RFC 5321 §4.5.3.2: the server may close after its timeout; say why first.
                if (_rateTooLow)
                {
                    Log.DataRateTooLow(_logger, _clientAddress);
                    activity?.SetTag("error.type", "min_data_rate");
                    await CloseWithAsync(SmtpReplies.ServiceNotAvailable(HostName, EnhancedStatusCodes.Timeout, "Minimum data rate not met, closing connection"));
                }
                else
                {
                    Log.SessionTimedOut(_logger, _client);
                    activity?.SetTag("error.type", "timeout");
                    await CloseWithAsync(SmtpReplies.ServiceNotAvailable(HostName, EnhancedStatusCodes.Timeout, "Timeout exceeded, closing connection"));
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException or AuthenticationException)
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
            await CompleteAsync();
        }
    }

    /// <summary>Asks Policy about the client, checks for early talkers, then sends 220 (RFC 5321 §4.3.1) or the refusal.</summary>
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

        // RFC 5321 §3.1 / RFC 2920 §3.1: the client waits for the greeting. Input before it is a spam-bot signature
        // (Postfix postscreen's pregreet test): 554 5.5.0 and close.
        if (await HasEarlyInputAsync())
        {
            Log.ImproperPipelining(_logger, _clientAddress, "input before the greeting");
            _sessionActivity?.SetTag("error.type", "early_talker");
            _metrics.ImproperPipelining("pregreet");
            await CloseWithAsync(SmtpReplies.ImproperPipelining);
            return false;
        }

        Write(new SmtpReply(220, null, HostName + " ESMTP MailMesh"));
        await _output.FlushAsync(_graceEnded);
        return true;
    }

    private async Task<bool> HasEarlyInputAsync()
    {
        if (_input.TryRead(out var ready))
        {
            _input.AdvanceTo(ready.Buffer.Start, ready.Buffer.Start);
            return !ready.Buffer.IsEmpty || ready.IsCompleted;
        }

        if (_options.GreetWait <= TimeSpan.Zero)
        {
            return false;
        }

        using var wait = CancellationTokenSource.CreateLinkedTokenSource(_graceEnded, _connection.ConnectionClosed);
        wait.CancelAfter(_options.GreetWait);
        try
        {
            var result = await _input.ReadAsync(wait.Token);
            _input.AdvanceTo(result.Buffer.Start, result.Buffer.Start);
            return !result.Buffer.IsEmpty;
        }
        catch (OperationCanceledException) when (!_graceEnded.IsCancellationRequested && !_connection.ConnectionClosed.IsCancellationRequested)
        {
            return false;
        }
    }

    private async Task ReadLoopAsync(CancellationTokenSource readTimeout)
    {
        while (true)
        {
            var mode = CurrentMode;
            var timeout = mode is Mode.Data or Mode.Chunk ? _options.DataBlockTimeout : _options.CommandTimeout;
            var rateDeadline = false;
            if (mode is Mode.Data or Mode.Chunk && _options.MinDataRate > 0)
            {
                // Kestrel's MinRequestBodyDataRate, for message content: after the grace period the average rate since
                // the content started must stay above the minimum. The read deadline is when the octets received so far
                // stop being enough.
                var elapsed = _time.GetElapsedTime(_contentStarted);
                var enough = TimeSpan.FromSeconds(_contentOctets / _options.MinDataRate);
                var deadline = (enough > _options.MinDataRateGracePeriod ? enough : _options.MinDataRateGracePeriod) - elapsed;
                if (deadline <= TimeSpan.Zero)
                {
                    _rateTooLow = true;
                    readTimeout.Cancel();
                    throw new OperationCanceledException(readTimeout.Token);
                }

                if (deadline < timeout)
                {
                    timeout = deadline;
                    rateDeadline = true;
                }
            }

            // Graceful stop: a session waiting for its next command with no mail transaction in progress is closed now
            // (421 4.3.2); one in a transaction reads on until the transaction ends or the grace period does. The flag
            // is published before the check, and the Draining callback reads it after the token is set, so one of
            // them sees the other (Interlocked.Exchange is a full fence).
            var idle = mode == Mode.Command && _state is (SmtpState.Connected or SmtpState.Greeted);
            if (idle)
            {
                Interlocked.Exchange(ref _idleRead, 1);
                if (_draining.IsCancellationRequested)
                {
                    _closedForShutdown = true;
                    readTimeout.Cancel();
                    throw new OperationCanceledException(readTimeout.Token);
                }
            }

            readTimeout.CancelAfter(timeout);
            ReadResult result;
            try
            {
                result = await _input.ReadAsync(readTimeout.Token);
            }
            catch (OperationCanceledException) when (rateDeadline && !_connection.ConnectionClosed.IsCancellationRequested && !_graceEnded.IsCancellationRequested && !_closedForShutdown)
            {
                _rateTooLow = true;
                throw;
            }
            finally
            {
                if (idle)
                {
                    Interlocked.Exchange(ref _idleRead, 0);
                }
            }

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
                while (!close && !_startTls)
                {
                    var remaining = buffer.Slice(consumed);
                    switch (CurrentMode)
                    {
                        case Mode.Data:
                            {
                                var before = remaining.Length;
                                var done = ReadContent(remaining, ref consumed);
                                _contentOctets += before - buffer.Slice(consumed).Length;
                                if (!done)
                                {
                                    goto NeedMore;
                                }

                                close = await EndOfDataAsync();
                                break;
                            }

                        case Mode.Chunk:
                            {
                                if (remaining.IsEmpty)
                                {
                                    goto NeedMore;
                                }

                                var take = remaining.Slice(0, Math.Min(remaining.Length, _chunkRemaining));
                                if (_chunkError is null && _discardReply is null)
                                {
                                    foreach (var segment in take)
                                    {
                                        _content!.Write(segment.Span);
                                    }
                                }

                                _chunkRemaining -= take.Length;
                                _contentOctets += take.Length;
                                consumed = take.End;
                                if (_chunkRemaining == 0)
                                {
                                    close = _discardReply is { } refusal ? EndOfDiscardedChunk(refusal) : await EndOfChunkAsync();
                                }

                                break;
                            }

                        default:
                            {
                                var status = ReadLine(remaining, ref consumed, out var line, out var lineError);
                                if (status == LineStatus.NeedMore)
                                {
                                    goto NeedMore;
                                }

                                if (mode == Mode.AuthResponse || _authMechanism is not null)
                                {
                                    close = lineError is not null ? AuthAbort(lineError) : await AuthResponseAsync(line);
                                    break;
                                }

                                SmtpCommand? command = null;
                                if (lineError is null && !SmtpCommandParser.TryParse(line, allowUtf8: _esmtp, out command, out lineError))
                                {
                                    command = null;
                                }

                                close = command is not null ? await ExecuteAsync(command)
                                    : ReferenceEquals(lineError, SmtpReplies.SyntaxBdat) ? BdatSyntaxError()
                                    : ProtocolError(lineError!);

                                // RFC 2920 §3.1: DATA must be the last command of a group; content sent before the 354 is
                                // a client that does not wait for replies (a spam-bot signature, and a smuggling vector).
                                if (!close && command?.Kind == SmtpCommandKind.Data && _state == SmtpState.Data && !buffer.Slice(consumed).IsEmpty)
                                {
                                    Log.ImproperPipelining(_logger, _clientAddress, "content before the 354 reply");
                                    _sessionActivity?.SetTag("error.type", "improper_pipelining");
                                    _metrics.ImproperPipelining("data");
                                    EndTransaction("improper_pipelining");
                                    Write(SmtpReplies.ImproperPipelining);
                                    close = true;
                                }
                                else if (!close && command is not null && MustEndGroup(command.Kind) && !buffer.Slice(consumed).IsEmpty)
                                {
                                    // RFC 2920 §3.1: EHLO, VRFY, EXPN and NOOP can only be the last command of a group, and
                                    // HELO does not offer PIPELINING at all: more input before our reply is a client
                                    // that does not wait for replies (Postfix: "improper command pipelining").
                                    Log.ImproperPipelining(_logger, _clientAddress, "commands after " + command.Kind.ToString().ToUpperInvariant());
                                    _sessionActivity?.SetTag("error.type", "improper_pipelining");
                                    _metrics.ImproperPipelining("group");
                                    EndTransaction("improper_pipelining");
                                    Write(SmtpReplies.ImproperPipelining);
                                    close = true;
                                }

                                break;
                            }
                    }
                }

            NeedMore:
                if (!close && result.IsCompleted)
                {
                    // The client went away without QUIT (possibly mid-message: nothing is stored).
                    close = true;
                }

                if (_startTls && !close)
                {
                    // RFC 3207 §4.2 / CVE-2011-0411: anything the client pipelined after STARTTLS was sent in clear and
                    // must not be taken as coming from the TLS session: discard it.
                    var extra = buffer.Slice(consumed).Length;
                    if (extra > 0)
                    {
                        Log.DiscardedAfterStartTls(_logger, _clientAddress, extra);
                        _metrics.ImproperPipelining("starttls");
                    }

                    consumed = buffer.End;
                }
            }
            finally
            {
                _input.AdvanceTo(consumed, buffer.End);
            }

            // RFC 2920 §3.1: replies to a pipelined group are sent when the input is drained.
            var flush = await _output.FlushAsync(_graceEnded);
            if (close || flush.IsCompleted)
            {
                return;
            }

            if (_startTls)
            {
                _startTls = false;
                if (!await StartTlsAsync())
                {
                    return;
                }
            }
        }
    }

    private LineStatus ReadLine(ReadOnlySequence<byte> buffer, ref SequencePosition consumed, out ReadOnlySequence<byte> line, out SmtpReply? error)
    {
        error = null;
        var reader = new SequenceReader<byte>(buffer);
        var status = _lines.TryReadLine(ref reader, out line);
        consumed = reader.Position;
        error = status switch
        {
            LineStatus.TooLong => SmtpReplies.LineTooLong,
            LineStatus.BareLineEnding => SmtpReplies.BareLineEnding,
            _ => null,
        };
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
        if (command.Kind == SmtpCommandKind.Bdat)
        {
            return await BdatAsync(command);
        }

        switch (command.Kind)
        {
            case SmtpCommandKind.Expn:
                return ProtocolError(SmtpReplies.NotImplemented);
            case SmtpCommandKind.StartTls when IsTls:
                return ProtocolError(SmtpReplies.TlsAlreadyActive);
            case SmtpCommandKind.StartTls when !StartTlsOffered:
            case SmtpCommandKind.Auth when !_services.Authenticator.HasUsers:
            case SmtpCommandKind.Auth or SmtpCommandKind.StartTls when !_esmtp && _state != SmtpState.Connected:
                // Not offered (no certificate, no accounts, or the client said HELO): RFC 5321 §4.2.4.
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
            case SmtpCommandKind.StartTls:
                // RFC 3207 §4: 220, then the handshake; the read loop discards anything pipelined after the command.
                Write(SmtpReplies.ReadyToStartTls);
                _startTls = true;
                return false;
            case SmtpCommandKind.Auth:
                return await AuthAsync(command);
            case SmtpCommandKind.Mail:
                return Mail(command);
            case SmtpCommandKind.Rcpt:
                return await RcptAsync(command);
            case SmtpCommandKind.Data:
                if (_mailParameters.Body == SmtpBodyType.BinaryMime)
                {
                    // RFC 3030 §3: BINARYMIME content cannot be dot-stuffed text; it comes with BDAT only.
                    return ProtocolError(SmtpReplies.BinaryMimeNeedsBdat);
                }

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

    /// <summary>RFC 5321 §4.1.1.1 EHLO reply: the extensions offered in this state of the session.</summary>
    private SmtpReply EhloReply()
    {
        var lines = new List<string>(14)
        {
            HostName + " greets " + (_helo ?? _clientAddress),
            "PIPELINING",
            "SIZE " + _options.MaxMessageSize.ToString(CultureInfo.InvariantCulture),
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
            "BINARYMIME",
            "DSN",
            "SMTPUTF8",
        };
        if (StartTlsOffered)
        {
            // RFC 3207 §4.2: not offered again once TLS is active.
            lines.Add("STARTTLS");
        }

        if (IsTls)
        {
            // RFC 8689 §4: REQUIRETLS is offered only on a TLS session.
            lines.Add("REQUIRETLS");
        }

        if (AuthOffered && _authenticatedUser is null)
        {
            lines.Add("AUTH PLAIN LOGIN");
        }

        return new SmtpReply(250, null, [.. lines]);
    }

    private bool Mail(SmtpCommand command)
    {
        if (!MailParameters.TryParse(command.Parameters, out var parameters, out var error))
        {
            return ProtocolError(error);
        }

        if (RequiresAuth && _authenticatedUser is null)
        {
            // RFC 6409 §4.3 / RFC 4954 §6: submission requires authentication.
            return ProtocolError(SmtpReplies.AuthenticationRequired);
        }

        if (parameters.RequireTls && !IsTls)
        {
            // RFC 8689 §4.1: REQUIRETLS only over TLS (and it is not advertised otherwise).
            return ProtocolError(SmtpReplies.RequireTlsNeedsTls);
        }

        if (command.Mailbox is { IsInternational: true } && !parameters.SmtpUtf8)
        {
            // RFC 6531 §3.4: a UTF-8 address needs the SMTPUTF8 parameter.
            return ProtocolError(SmtpReplies.Utf8AddressNeedsSmtpUtf8);
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
        if (!RcptParameters.TryParse(command.Parameters, out var parameters, out var error))
        {
            return ProtocolError(error);
        }

        if (command.Mailbox is { IsInternational: true } && !_mailParameters.SmtpUtf8)
        {
            // RFC 6531 §3.4: UTF-8 recipients only in an SMTPUTF8 transaction.
            return ProtocolError(SmtpReplies.Utf8AddressNeedsSmtpUtf8);
        }

        if (_recipients.Count >= _options.MaxRecipients)
        {
            // RFC 5321 §4.5.3.1.10: 452 and the client sends the rest in another transaction.
            Write(SmtpReplies.TooManyRecipients);
            return false;
        }

        // RFC 5321 §4.1.1.3: <Postmaster> without a domain is this server's postmaster. Every other recipient is the
        // parsed, normalised address (domain lower-cased, IDNs as A-labels): exactly what Policy checks is what is
        // stored and routed.
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
                AuthenticatedUser = _authenticatedUser,
                AcceptedRecipients = _recipients.Count,
            },
            ct));
        if (decision.Reply is not null)
        {
            Write(decision.Reply);
            return false;
        }

        _recipients.Add(new NewRecipient { Address = address, Notify = parameters.Notify, OriginalRecipient = parameters.OriginalRecipient });
        _state = SmtpState.RcptGiven;
        Write(SmtpReplies.RecipientOk);
        return false;
    }

    /// <summary>Starts the message buffer with our Received header (RFC 5321 §4.4), for DATA and the first BDAT.</summary>
    private void StartContent()
    {
        _messageId = Guid.CreateVersion7();
        _receivedAt = _time.GetUtcNow();
        _transaction?.SetTag("mailmesh.message.id", _messageId.ToString());
        _contentStarted = _time.GetTimestamp();
        _contentOctets = 0;

        // Pre-size from the declared SIZE (RFC 1870), never beyond the limit.
        var expected = (int)Math.Min(_mailParameters.Size ?? 16 * 1024, _options.MaxMessageSize) + 512;
        _content = new ArrayBufferWriter<byte>(expected);
        ReceivedHeader.Write(
            _content,
            _helo,
            ClientIp,
            HostName,
            ReceivedProtocol(),
            _messageId,
            _recipients.Count == 1 ? _recipients[0].Address : null,
            _receivedAt);
    }

    /// <summary>The "with" value of the Received header (RFC 3848, RFC 6531 §3.7.3).</summary>
    private string ReceivedProtocol()
    {
        if (!_esmtp)
        {
            return "SMTP";
        }

        var suffix = (IsTls ? "S" : string.Empty) + (_authenticatedUser is not null ? "A" : string.Empty);
        return (_mailParameters.SmtpUtf8 ? "UTF8SMTP" : "ESMTP") + suffix;
    }

    private void StartData()
    {
        StartContent();
        _data.Reset();
        _state = SmtpState.Data;
        Write(SmtpReplies.StartMailInput);
    }

    /// <summary>
    /// RFC 3030 §2: BDAT chunk-size [LAST]; the chunk's octets follow the command line exactly. Whatever the reply, the
    /// chunk is read: a refused BDAT's octets are discarded (RFC 3030 §2: "the receiver SMTP MUST be prepared to accept
    /// and discard additional BDAT chunks") and never parsed as commands, which would let a chunk carry a second,
    /// smuggled transaction.
    /// </summary>
    private async Task<bool> BdatAsync(SmtpCommand command)
    {
        // Not offered after HELO (RFC 5321 §4.2.4: 502), or out of sequence (the state table: 503, or 554 with no
        // accepted recipient).
        var refusal = !_esmtp && _state != SmtpState.Connected ? SmtpReplies.NotImplemented : SmtpStateTable.Check(_state, SmtpCommandKind.Bdat);
        if (refusal is not null)
        {
            return command.ChunkSize == 0 ? ProtocolError(refusal) : StartDiscard(command.ChunkSize, refusal);
        }

        var size = command.ChunkSize;
        if (_state != SmtpState.Chunking)
        {
            StartContent();
            _chunkError = null;
            _chunkErrorType = null;
            _state = SmtpState.Chunking;
        }

        _chunkLast = command.IsLastChunk;
        _chunkRemaining = size;

        // RFC 1870 / RFC 3030 §4.2: the size is checked per chunk; an oversized chunk is read and thrown away (its
        // length is known), and the transaction fails.
        if (_chunkError is null && _contentOctets + size > _options.MaxMessageSize)
        {
            _chunkError = SmtpReplies.MessageTooBig;
            _chunkErrorType = "message_too_big";
            _content = null;
        }

        return size == 0 && await EndOfChunkAsync();
    }

    /// <summary>Reads a refused BDAT's chunk before answering: the octets are counted for the data rate, never kept.</summary>
    private bool StartDiscard(long size, SmtpReply refusal)
    {
        _discardReply = refusal;
        _chunkRemaining = size;
        _contentStarted = _time.GetTimestamp();
        _contentOctets = 0;
        return false;
    }

    private bool EndOfDiscardedChunk(SmtpReply refusal)
    {
        _discardReply = null;
        return ProtocolError(refusal);
    }

    /// <summary>A BDAT line whose chunk-size cannot be read: the octets that follow cannot be skipped, so close.</summary>
    private bool BdatSyntaxError()
    {
        Log.BdatSyntax(_logger, _clientAddress);
        _sessionActivity?.SetTag("error.type", "bdat_syntax");
        EndTransaction("bdat_syntax");
        Write(SmtpReplies.SyntaxBdat);
        return true;
    }

    private async Task<bool> EndOfChunkAsync()
    {
        if (!_chunkLast)
        {
            Write(_chunkError ?? SmtpReplies.ChunkReceived(_contentOctets));
            return false;
        }

        // BDAT LAST ends the transaction whatever the reply (RFC 3030 §2).
        _state = SmtpState.Greeted;
        if (_chunkError is { } error)
        {
            _acceptor.RecordRefusal(MessageOrigin.Smtp, _sender, _clientAddress, error, _chunkErrorType!);
            Write(error);
            EndTransaction(_chunkErrorType);
            return false;
        }

        var body = _mailParameters.Body switch
        {
            SmtpBodyType.BinaryMime => BodyType.BinaryMime,
            SmtpBodyType.EightBitMime => BodyType.EightBitMime,
            _ => ContainsEightBit(_content!.WrittenSpan) ? BodyType.EightBitMime : BodyType.SevenBit,
        };
        await AcceptAsync(body);
        return false;
    }

    private static bool ContainsEightBit(ReadOnlySpan<byte> content) => content.IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0;

    /// <summary>RFC 5321 §4.1.1.4: the end of data ends the transaction whatever the reply.</summary>
    private async Task<bool> EndOfDataAsync()
    {
        _state = SmtpState.Greeted;
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

        await AcceptAsync(_mailParameters.Body == SmtpBodyType.EightBitMime || _data.Has8BitData ? BodyType.EightBitMime : BodyType.SevenBit);
        return false;
    }

    private async Task AcceptAsync(BodyType body)
    {
        var request = new AcceptRequest
        {
            MessageId = _messageId,
            ReceivedAt = _receivedAt,
            Sender = _sender,
            Recipients = [.. _recipients],
            Content = _content!.WrittenMemory,
            AddReceivedHeader = false,
            ClientAddress = _clientAddress,
            ClientIp = ClientIp,
            ClientHelo = _helo,
            AuthenticatedUser = _authenticatedUser,
            Origin = MessageOrigin.Smtp,
            Protocol = ReceivedProtocol(),
            BodyType = body,
            SmtpUtf8 = _mailParameters.SmtpUtf8,
            RequireTls = _mailParameters.RequireTls,
            EnvelopeId = _mailParameters.EnvelopeId,
            Ret = _mailParameters.Ret,
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
                _graceEnded);
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
    }

    /// <summary>RFC 4954 §4: AUTH mechanism [initial-response].</summary>
    private async Task<bool> AuthAsync(SmtpCommand command)
    {
        if (_authenticatedUser is not null)
        {
            return ProtocolError(SmtpReplies.AlreadyAuthenticated);
        }

        if (!AuthOffered)
        {
            // RFC 4954 §4 / §6: AUTH over a clear channel when only TLS may carry it.
            return ProtocolError(SmtpReplies.EncryptionRequired);
        }

        if (_services.Authenticator.IsLockedOut(_clientAddress))
        {
            Log.AuthLockedOut(_logger, _clientAddress);
            return ProtocolError(SmtpReplies.AuthenticationTemporaryFailure);
        }

        var parts = command.Argument.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length is 0 or > 2)
        {
            return ProtocolError(SmtpReplies.SyntaxParameters);
        }

        var mechanism = parts[0].ToUpperInvariant();
        if (mechanism is not ("PLAIN" or "LOGIN"))
        {
            return ProtocolError(SmtpReplies.UnrecognizedAuthenticationType);
        }

        _authMechanism = mechanism;
        _authUser = null;
        if (parts.Length == 1)
        {
            // PLAIN: an empty challenge (RFC 4616 §2); LOGIN: "Username:" (draft-murchison-sasl-login).
            Write(new SmtpReply(334, null, mechanism == "PLAIN" ? string.Empty : "VXNlcm5hbWU6"));
            return false;
        }

        // RFC 4954 §4: "=" is an empty initial response.
        return await AuthResponseAsync(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(parts[1])));
    }

    private async Task<bool> AuthResponseAsync(ReadOnlySequence<byte> line)
    {
        var text = line.IsSingleSegment ? line.FirstSpan : line.ToArray();
        if (text is [(byte)'*'])
        {
            return AuthAbort(SmtpReplies.AuthenticationCancelled);
        }

        byte[] decoded;
        if (text is [(byte)'='])
        {
            decoded = [];
        }
        else
        {
            decoded = new byte[Base64.GetMaxDecodedFromUtf8Length(text.Length)];
            if (Base64.DecodeFromUtf8(text, decoded, out _, out var written) != OperationStatus.Done)
            {
                return AuthAbort(SmtpReplies.AuthenticationBadBase64);
            }

            decoded = decoded[..written];
        }

        string user, password;
        if (_authMechanism == "LOGIN")
        {
            if (_authUser is null)
            {
                _authUser = Encoding.UTF8.GetString(decoded);
                Write(new SmtpReply(334, null, "UGFzc3dvcmQ6"));
                return false;
            }

            user = _authUser;
            password = Encoding.UTF8.GetString(decoded);
        }
        else
        {
            // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd.
            var first = Array.IndexOf(decoded, (byte)0);
            var second = first < 0 ? -1 : Array.IndexOf(decoded, (byte)0, first + 1);
            if (second < 0)
            {
                return AuthAbort(SmtpReplies.AuthenticationBadBase64);
            }

            var authorization = Encoding.UTF8.GetString(decoded, 0, first);
            user = Encoding.UTF8.GetString(decoded, first + 1, second - first - 1);
            password = Encoding.UTF8.GetString(decoded, second + 1, decoded.Length - second - 1);
            if (authorization.Length > 0 && !string.Equals(authorization, user, StringComparison.Ordinal))
            {
                // Acting as another identity is not supported: RFC 4616 §2 lets the server refuse.
                password = string.Empty;
            }
        }

        var mechanism = _authMechanism!;
        _authMechanism = null;
        _authUser = null;
        var outcome = await _services.Authenticator.VerifyAsync(_clientAddress, user, password, _graceEnded);
        switch (outcome)
        {
            case AuthOutcome.Succeeded:
                _authenticatedUser = user;
                _sessionActivity?.SetTag("enduser.id", user);
                Log.AuthSucceeded(_logger, mechanism, user, _clientAddress);
                _metrics.Authentication("success");
                Write(SmtpReplies.AuthenticationSucceeded);
                return false;
            case AuthOutcome.LockedOut:
                Log.AuthLockedOut(_logger, _clientAddress);
                _metrics.Authentication("locked_out");
                return ProtocolError(SmtpReplies.AuthenticationTemporaryFailure);
            default:
                Log.AuthFailed(_logger, mechanism, user, _clientAddress);
                _metrics.Authentication("failure");
                return ProtocolError(SmtpReplies.AuthenticationFailed);
        }
    }

    private bool AuthAbort(SmtpReply reply)
    {
        _authMechanism = null;
        _authUser = null;
        return ProtocolError(reply);
    }

    /// <summary>
    /// RFC 3207 §4.2 / RFC 8314 §3.3: TLS handshake over the connection, then the session continues over the SslStream
    /// in a fresh state (the client must EHLO again; nothing learnt before TLS is kept).
    /// </summary>
    private async Task<bool> StartTlsAsync()
    {
        var certificate = _services.Certificate.Current;
        if (certificate is null)
        {
            await CloseWithAsync(SmtpReplies.TlsNotAvailable);
            return false;
        }

        var ssl = new SslStream(new DuplexPipeStream(_connection.Transport), leaveInnerStreamOpen: false);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_graceEnded, _connection.ConnectionClosed);
            timeout.CancelAfter(_services.Tls.HandshakeTimeout);
            await ssl.AuthenticateAsServerAsync(
                new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = certificate,
                    ClientCertificateRequired = false,
                    CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                },
                timeout.Token);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or OperationCanceledException)
        {
            Log.HandshakeFailed(_logger, _clientAddress, ex);
            _metrics.TlsHandshake(failed: true);
            await ssl.DisposeAsync();
            return false;
        }

        _metrics.TlsHandshake(failed: false);
        _sessionActivity?.SetTag("tls.protocol.version", ssl.SslProtocol.ToString());
        _tls = ssl;
        _input = PipeReader.Create(ssl, new StreamPipeReaderOptions(leaveOpen: true));
        _output = PipeWriter.Create(ssl, new StreamPipeWriterOptions(leaveOpen: true));
        _lines = new SmtpLineReader(_options.MaxCommandLineLength);
        EndTransaction(null);
        _state = SmtpState.Connected;
        _helo = null;
        _esmtp = false;
        _authenticatedUser = null;
        return true;
    }

    private async Task<(SmtpReply? Reply, bool Failed)> CheckPolicyAsync(string check, Func<CancellationToken, Task<PolicyDecision>> ask)
    {
        PolicyDecision decision;
        try
        {
            decision = await ask(_graceEnded);
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
        _chunkRemaining = 0;
        _chunkLast = false;
        _chunkError = null;
        _chunkErrorType = null;
        _discardReply = null;
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
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException or ConnectionResetException or ObjectDisposedException or AuthenticationException)
        {
            Log.ConnectionLost(_logger, _client, ex);
        }
    }

    private async Task CompleteAsync()
    {
        if (_tls is { } tls)
        {
            await _input.CompleteAsync();
            await _output.CompleteAsync();
            try
            {
                await tls.DisposeAsync();
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
            {
                Log.ConnectionLost(_logger, _client, ex);
            }
        }

        await _connection.Transport.Input.CompleteAsync();
        await _connection.Transport.Output.CompleteAsync();
    }

    /// <summary>Commands after which a client must wait for the reply before sending more (RFC 2920 §3.1).</summary>
    private static bool MustEndGroup(SmtpCommandKind kind) =>
        kind is SmtpCommandKind.Ehlo or SmtpCommandKind.Helo or SmtpCommandKind.Noop or SmtpCommandKind.Vrfy or SmtpCommandKind.Expn;
}
