using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using MailMesh.Contracts;
using MailMesh.Ingress.Acceptance;
using MailMesh.Ingress.Auth;
using MailMesh.Ingress.Memory;
using MailMesh.Ingress.Tls;
using MailMesh.ServiceDefaults.Tls;
using MailMesh.Smtp;
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
    MessageBufferBudget Budget,
    TimeProvider Time,
    ILogger Logger);

/// <summary>What the next octets from the client are.</summary>
internal enum ReadModeKind
{
    /// <summary>A command line.</summary>
    Command,

    /// <summary>A response line of an AUTH exchange (RFC 4954 §4), not a command.</summary>
    AuthResponse,

    /// <summary>DATA content up to CRLF.CRLF (RFC 5321 §4.1.1.4).</summary>
    Data,

    /// <summary>The rest of an accepted BDAT chunk (RFC 3030 §2): exactly <see cref="ReadMode.ChunkRemaining"/> octets.</summary>
    Chunk,

    /// <summary>The rest of a refused BDAT chunk: read and discarded, then the refusal is answered.</summary>
    DiscardChunk,
}

/// <summary>
/// The session's read mode: one value, set where the protocol changes it and read before each piece of input, never
/// derived from other state (a stale copy of it once made a command pipelined after an AUTH LOGIN password be read as
/// another AUTH response).
/// </summary>
internal readonly record struct ReadMode(ReadModeKind Kind, long ChunkRemaining = 0)
{
    public static ReadMode Command { get; } = new(ReadModeKind.Command);

    public static ReadMode AuthResponse { get; } = new(ReadModeKind.AuthResponse);

    public static ReadMode Data { get; } = new(ReadModeKind.Data);

    public static ReadMode Chunk(long octets) => new(ReadModeKind.Chunk, octets);

    public static ReadMode DiscardChunk(long octets) => new(ReadModeKind.DiscardChunk, octets);

    /// <summary>Message content (DATA or a BDAT chunk, kept or discarded): the data timeouts and rate apply.</summary>
    public bool IsContent => Kind is ReadModeKind.Data or ReadModeKind.Chunk or ReadModeKind.DiscardChunk;
}

/// <summary>
/// One SMTP server session (RFC 5321) over a Kestrel connection. Reads with System.IO.Pipelines, parses with
/// MailMesh.Smtp, asks Policy inline and hands each complete message to <see cref="MessageAcceptor"/>, which commits it
/// to the spool before the 250.
/// PIPELINING (RFC 2920): every complete command in the input buffer is processed and answered into the output
/// pipe, which is flushed only when the buffer is drained (or before waiting for message content after 354).
/// Extensions: STARTTLS (RFC 3207), AUTH PLAIN/LOGIN (RFC 4954, RFC 4616), CHUNKING/BINARYMIME (RFC 3030), DSN
/// (RFC 3461), SMTPUTF8 (RFC 6531), REQUIRETLS (RFC 8689), SIZE (RFC 1870), 8BITMIME (RFC 6152).
/// The class is split by concern: this file has the read loop and command dispatch; SmtpSession.Transaction.cs MAIL,
/// RCPT, DATA and BDAT; SmtpSession.Auth.cs AUTH; SmtpSession.Tls.cs STARTTLS and implicit TLS.
/// </summary>
internal sealed partial class SmtpSession
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
    private readonly MessageBufferBudget _budget;

    private PipeReader _input;
    private PipeWriter _output;
    private SslStream? _tls;
    private SmtpLineReader _lines;
    private SmtpState _state = SmtpState.Connected;
    private ReadMode _mode = ReadMode.Command;
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

    // The AUTH exchange in progress (RFC 4954 §4), while _mode is AuthResponse.
    private SmtpAuthExchange? _auth;

    // The mail transaction (MAIL to end of DATA / BDAT LAST), or null.
    private MailTransaction? _transaction;

    // Message content pace (MinDataRate), for DATA and BDAT chunks, kept or discarded.
    private long _contentStarted;
    private long _contentOctets;

    // RFC 3030 §2: a refused BDAT's chunk is read and discarded (_mode is DiscardChunk); this is the reply given then.
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
        _budget = services.Budget;
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

    private string HostName => _options.HostName;

    private IPAddress? ClientIp => _client?.Address is { IsIPv4MappedToIPv6: true } mapped ? mapped.MapToIPv4() : _client?.Address;

    private bool IsTls => _tls is not null;

    private bool RequiresAuth => _kind != ListenerKind.Relay;

    private bool StartTlsOffered => !IsTls && _services.Certificate.IsEnabled;

    private bool AuthOffered => _services.Authenticator.HasUsers && (IsTls || _services.Auth.AllowPlaintext);

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
            var content = _mode.IsContent;
            var timeout = content ? _options.DataBlockTimeout : _options.CommandTimeout;
            var rateDeadline = false;
            if (content && _options.MinDataRate > 0)
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
            var idle = _mode.Kind == ReadModeKind.Command && _state is (SmtpState.Connected or SmtpState.Greeted);
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
                    switch (_mode.Kind)
                    {
                        case ReadModeKind.Data:
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

                        case ReadModeKind.Chunk or ReadModeKind.DiscardChunk:
                            {
                                if (remaining.IsEmpty)
                                {
                                    goto NeedMore;
                                }

                                var take = remaining.Slice(0, Math.Min(remaining.Length, _mode.ChunkRemaining));
                                if (_mode.Kind == ReadModeKind.Chunk && _transaction?.Content is { } output)
                                {
                                    foreach (var segment in take)
                                    {
                                        output.Write(segment.Span);
                                    }
                                }

                                _contentOctets += take.Length;
                                consumed = take.End;
                                _mode = _mode with { ChunkRemaining = _mode.ChunkRemaining - take.Length };
                                if (_mode.ChunkRemaining == 0)
                                {
                                    close = _mode.Kind == ReadModeKind.DiscardChunk ? EndOfDiscardedChunk() : await EndOfChunkAsync();
                                }

                                break;
                            }

                        case ReadModeKind.AuthResponse:
                            {
                                var status = ReadLine(remaining, ref consumed, out var line, out var lineError);
                                if (status == LineStatus.NeedMore)
                                {
                                    goto NeedMore;
                                }

                                close = await AuthResponseAsync(line, lineError);
                                break;
                            }

                        default:
                            {
                                var status = ReadLine(remaining, ref consumed, out var line, out var lineError);
                                if (status == LineStatus.NeedMore)
                                {
                                    goto NeedMore;
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
                                if (!close && command?.Kind == SmtpCommandKind.Data && _mode.Kind == ReadModeKind.Data && !buffer.Slice(consumed).IsEmpty)
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
        var done = _data.TryRead(ref reader, _transaction?.Content);
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
                return Data();
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
            lines.Add("AUTH " + SmtpAuthExchange.Mechanisms);
        }

        return new SmtpReply(250, null, [.. lines]);
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
