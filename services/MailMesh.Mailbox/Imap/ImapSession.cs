using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using MailMesh.Mailbox.Protocols;
using MailMesh.ServiceDefaults.Security;
using MailMesh.ServiceDefaults.Tls;
using MailMesh.Storage;

namespace MailMesh.Mailbox.Imap;

/// <summary>The singletons every IMAP session uses.</summary>
internal sealed record ImapServices(
    MailboxProtocolOptions Options,
    MailboxTlsOptions Tls,
    ServerCertificate Certificate,
    MailboxLogin Login,
    IMailStore Store,
    TimeProvider Time,
    ILogger Logger);

/// <summary>The session's state (RFC 9051 §3): one field, changed only where the protocol changes it.</summary>
internal enum ImapState
{
    NotAuthenticated,
    Authenticated,
    Selected,
    Logout,
}

/// <summary>
/// One IMAP session (RFC 9051 IMAP4rev2, also IMAP4rev1 for older clients). Split by concern: this file has the read
/// loop, framing outcomes and the commands of any state (CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE,
/// ENABLE, ID, NAMESPACE); ImapSession.Folders.cs the mailbox commands; ImapSession.Messages.cs the selected state;
/// ImapSession.Idle.cs IDLE and the updates other sessions cause. Commands are executed one at a time, in order.
/// </summary>
internal sealed partial class ImapSession
{
    private const string Capabilities = "IMAP4rev1 IMAP4rev2 LITERAL- SASL-IR ENABLE ID IDLE NAMESPACE UIDPLUS MOVE UNSELECT SPECIAL-USE LIST-EXTENDED ESEARCH CHILDREN";

    private readonly MailConnection _connection;
    private readonly ImapServices _services;
    private readonly ImapCommandReader _reader;
    private readonly List<SpilledLiteral> _streamed = [];
    private ImapState _state = ImapState.NotAuthenticated;
    private int _badCommands;
    private bool _rev2;
    private MailAccount? _account;
    private MailboxWatch? _watch;

    public ImapSession(MailConnection connection, ImapServices services)
    {
        _connection = connection;
        _services = services;
        var o = services.Options;
        _reader = new ImapCommandReader(new ImapLimits(o.ImapMaxLineLength, o.ImapMaxCommandSize, Math.Min(65536, o.ImapMaxCommandSize), o.MaxMessageSize));
    }

    private ImapWriter W => new(_connection.Output);

    private bool PlaintextAllowed => _connection.IsTls || _services.Options.AllowPlaintextAuth;

    private CancellationToken Closed => _connection.Closed;

    public async Task RunAsync()
    {
        try
        {
            W.Raw("* OK [CAPABILITY " + CapabilityList() + "] " + _services.Options.HostName + " MailMesh IMAP server ready\r\n");
            await FlushAsync();
            await LoopAsync();
        }
        finally
        {
            _watch?.Dispose();
            ReleaseStreamed();
        }
    }

    private async Task LoopAsync()
    {
        var input = _connection.Input;
        while (_state != ImapState.Logout)
        {
            ReadResult result;
            var timeout = _state == ImapState.NotAuthenticated ? _services.Options.LoginTimeout : _services.Options.ImapIdleTimeout;
            using (var deadline = _connection.StartDeadline(timeout))
            {
                try
                {
                    result = await input.ReadAsync(deadline.Token);
                }
                catch (OperationCanceledException) when (deadline.TimedOut)
                {
                    // RFC 9051 §7.1.5: BYE before an autologout.
                    MailboxProtocolLog.TimedOut(_services.Logger, "IMAP", _connection.Client);
                    W.Raw("* BYE Autologout; idle for too long\r\n");
                    await FlushAsync();
                    return;
                }
            }

            var buffer = result.Buffer;
            var (status, position) = Frame(buffer);
            switch (status)
            {
                case ImapReadStatus.NeedMore:
                    input.AdvanceTo(position, buffer.End);
                    if (result.IsCompleted)
                    {
                        return;
                    }

                    continue;
                case ImapReadStatus.NeedContinuation:
                    input.AdvanceTo(position);
                    W.Raw("+ Ready for literal data\r\n");
                    await FlushAsync();
                    continue;
                case ImapReadStatus.StreamLiteral:
                    input.AdvanceTo(position);
                    if (!await ReadStreamedLiteralAsync())
                    {
                        return;
                    }

                    continue;
                case ImapReadStatus.TooLong:
                    input.AdvanceTo(position);
                    await BadAsync(_reader.RejectedTag, "Command line too long");
                    await FlushAsync();
                    continue;
                case ImapReadStatus.LiteralRefused:
                    input.AdvanceTo(position);

                    // RFC 9051 §7.1: TOOBIG, without asking for the literal (RFC 7888 §4 for a non-synchronizing one).
                    W.Raw((_reader.RejectedTag ?? "*") + " NO [TOOBIG] Literal too large\r\n");
                    await FlushAsync();
                    continue;
            }

            // A whole command: copy it out of the pipe's buffer, since handling it reads and writes the pipes again.
            var command = _reader.Command.ToArray();
            _reader.Reset();
            var startTls = false;
            var moreInput = buffer.Slice(position).Length > 0;
            input.AdvanceTo(position);
            try
            {
                startTls = await ExecuteAsync(command);
            }
            finally
            {
                ReleaseStreamed();
            }

            await FlushAsync();
            if (startTls)
            {
                if (moreInput)
                {
                    MailboxProtocolLog.DiscardedAfterStartTls(_services.Logger, "IMAP", _connection.Client);
                }

                if (!await _connection.StartTlsAsync(_services.Certificate, _services.Tls.HandshakeTimeout, Closed))
                {
                    return;
                }

                input = _connection.Input;
            }
        }
    }

    private (ImapReadStatus Status, SequencePosition Position) Frame(ReadOnlySequence<byte> buffer)
    {
        var reader = new SequenceReader<byte>(buffer);
        var status = _reader.TryRead(ref reader);
        return (status, reader.Position);
    }

    /// <summary>
    /// APPEND's message literal: exactly the announced octets, written to a spill file as they arrive
    /// (<see cref="SpilledLiteral"/>), so a message up to <c>Mailbox:MaxMessageSize</c> is never held whole in memory.
    /// False when the client went away before sending it all.
    /// </summary>
    private async Task<bool> ReadStreamedLiteralAsync()
    {
        if (_reader.StreamSynchronizing)
        {
            W.Raw("+ Ready for literal data\r\n");
            await FlushAsync();
        }

        var literal = SpilledLiteral.Create(_services.Options.ContentDirectory, _reader.StreamLength);
        _streamed.Add(literal);
        while (literal.Written < literal.Length)
        {
            ReadResult result;
            using (var deadline = _connection.StartDeadline(_services.Options.ImapIdleTimeout))
            {
                result = await _connection.Input.ReadAsync(deadline.Token);
            }

            var take = Math.Min(result.Buffer.Length, literal.Length - literal.Written);
            await literal.WriteAsync(result.Buffer.Slice(0, take), Closed);
            _connection.Input.AdvanceTo(result.Buffer.GetPosition(take));
            if (result.IsCompleted && literal.Written < literal.Length)
            {
                return false;
            }
        }

        await literal.CompleteAsync(Closed);
        _reader.StreamDone();
        return true;
    }

    /// <summary>Deletes the spill files of the command just done (or of a session that ended inside one).</summary>
    private void ReleaseStreamed()
    {
        foreach (var literal in _streamed)
        {
            literal.Dispose();
        }

        _streamed.Clear();
    }

    /// <summary>Runs one command; true when it was an accepted STARTTLS.</summary>
    private async Task<bool> ExecuteAsync(byte[] bytes)
    {
        if (!ImapParser.TryParse(bytes, out var command, out var tag, out var error))
        {
            await BadAsync(tag, error);
            return false;
        }

        var c = command!;
        if (!Allowed(c.Name))
        {
            await BadAsync(c.Tag, _state == ImapState.NotAuthenticated ? "Log in first" : "Command not valid in this state");
            return false;
        }

        try
        {
            switch (c.Name)
            {
                case "CAPABILITY":
                    W.Raw("* CAPABILITY " + CapabilityList() + "\r\n");
                    Ok(c, "CAPABILITY completed");
                    return false;
                case "NOOP" or "CHECK":
                    if (_state == ImapState.Selected)
                    {
                        await SyncAsync(reportExpunges: true);
                    }

                    Ok(c, c.Name + " completed");
                    return false;
                case "LOGOUT":
                    W.Raw("* BYE " + _services.Options.HostName + " IMAP server logging out\r\n");
                    Ok(c, "LOGOUT completed");
                    _state = ImapState.Logout;
                    return false;
                case "STARTTLS":
                    if (_connection.IsTls || !_services.Certificate.IsEnabled)
                    {
                        await BadAsync(c.Tag, "TLS is not available");
                        return false;
                    }

                    Ok(c, "Begin TLS negotiation now");
                    return true;
                case "LOGIN":
                    await LoginAsync(c, c.Arguments[0]!, c.Arguments[1]!);
                    return false;
                case "AUTHENTICATE":
                    await AuthenticateAsync(c);
                    return false;
                case "ENABLE":
                    Enable(c);
                    return false;
                case "ID":
                    // RFC 2971 §3.1.
                    W.Raw("* ID (\"name\" \"MailMesh\" \"vendor\" \"MailMesh\")\r\n");
                    Ok(c, "ID completed");
                    return false;
                case "NAMESPACE":
                    // RFC 2342: one personal namespace, no others.
                    W.Raw("* NAMESPACE ((\"\" \"" + MailFolder.Delimiter + "\")) NIL NIL\r\n");
                    Ok(c, "NAMESPACE completed");
                    return false;
                case "IDLE":
                    await IdleAsync(c);
                    return false;
                default:
                    await ExecuteFolderOrMessageCommandAsync(c);
                    return false;
            }
        }
        catch (Exception ex) when (ex is not (OperationCanceledException or IOException))
        {
            MailboxProtocolLog.StoreFailed(_services.Logger, "IMAP", ex);
            W.Raw(c.Tag + " NO [UNAVAILABLE] Temporary failure; try again\r\n");
            return false;
        }
    }

    /// <summary>RFC 9051 §6: which commands each state allows (one table).</summary>
    private bool Allowed(string name) => name switch
    {
        "CAPABILITY" or "NOOP" or "LOGOUT" or "ID" => true,
        "STARTTLS" or "LOGIN" or "AUTHENTICATE" => _state == ImapState.NotAuthenticated,
        "CHECK" or "CLOSE" or "UNSELECT" or "EXPUNGE" or "SEARCH" or "FETCH" or "STORE" or "COPY" or "MOVE" => _state == ImapState.Selected,
        _ => _state is ImapState.Authenticated or ImapState.Selected,
    };

    private string CapabilityList()
    {
        if (_state != ImapState.NotAuthenticated)
        {
            return Capabilities;
        }

        var list = new StringBuilder("IMAP4rev1 IMAP4rev2 LITERAL- SASL-IR ENABLE ID IDLE");
        if (!_connection.IsTls && _services.Certificate.IsEnabled)
        {
            list.Append(" STARTTLS");
        }

        // RFC 9051 §6.2.3: LOGINDISABLED when LOGIN (and PLAIN) must not be used yet.
        list.Append(PlaintextAllowed ? " AUTH=PLAIN" : " LOGINDISABLED");
        return list.ToString();
    }

    private async Task LoginAsync(ImapCommand c, string user, string password)
    {
        if (!PlaintextAllowed)
        {
            W.Raw(c.Tag + " NO [PRIVACYREQUIRED] Plaintext authentication is disallowed without TLS; use STARTTLS\r\n");
            return;
        }

        if (_services.Login.IsLockedOut(_connection.Client))
        {
            W.Raw(c.Tag + " NO [UNAVAILABLE] Too many failed logins; try again later\r\n");
            return;
        }

        var (outcome, account) = await _services.Login.LoginAsync("imap", _connection.Client, user, password, Closed);
        if (outcome != AuthOutcome.Succeeded || account is null)
        {
            MailboxProtocolLog.LoginFailed(_services.Logger, "IMAP", _connection.Client, outcome.ToString());
            W.Raw(c.Tag + (outcome == AuthOutcome.LockedOut ? " NO [UNAVAILABLE] Too many failed logins; try again later\r\n" : " NO [AUTHENTICATIONFAILED] Authentication failed\r\n"));
            await NoteBadAsync();
            return;
        }

        _account = account;
        _state = ImapState.Authenticated;

        // Subscribe before anything is read, so no change falls between a listing and the watch.
        _watch = _services.Store.WatchChanges(account.Id);
        MailboxProtocolLog.LoggedIn(_services.Logger, "IMAP", _connection.Client, account.Address);

        // RFC 9051 §6.2.3: capabilities may change after login; say so in the tagged OK.
        W.Raw(c.Tag + " OK [CAPABILITY " + Capabilities + "] Logged in\r\n");
    }

    private async Task AuthenticateAsync(ImapCommand c)
    {
        if (c.Arguments[0] != "PLAIN")
        {
            W.Raw(c.Tag + " NO Unsupported authentication mechanism\r\n");
            return;
        }

        if (!PlaintextAllowed)
        {
            W.Raw(c.Tag + " NO [PRIVACYREQUIRED] Plaintext authentication is disallowed without TLS; use STARTTLS\r\n");
            return;
        }

        var response = c.Arguments[1];
        if (response is null)
        {
            // RFC 9051 §6.2.2: an empty challenge, then one line of base64.
            W.Raw("+ \r\n");
            await FlushAsync();
            response = await ReadLineAsync();
            if (response is null)
            {
                _state = ImapState.Logout;
                return;
            }
        }

        if (response == "*")
        {
            await BadAsync(c.Tag, "Authentication cancelled");
            return;
        }

        if (response == "=" || !MailboxLogin.TryDecodePlain(Encoding.ASCII.GetBytes(response), out var user, out var password))
        {
            await BadAsync(c.Tag, "Malformed PLAIN response");
            return;
        }

        await LoginAsync(c, user, password);
    }

    /// <summary>One line of a SASL exchange (RFC 9051 §6.2.2), at most the command line limit.</summary>
    private async Task<string?> ReadLineAsync()
    {
        var input = _connection.Input;
        while (true)
        {
            ReadResult result;
            using (var deadline = _connection.StartDeadline(_services.Options.LoginTimeout))
            {
                result = await input.ReadAsync(deadline.Token);
            }

            var buffer = result.Buffer;
            var lf = buffer.PositionOf((byte)'\n');
            if (lf is null)
            {
                if (buffer.Length > _services.Options.ImapMaxLineLength || result.IsCompleted)
                {
                    input.AdvanceTo(buffer.End);
                    return null;
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }

            var line = Encoding.ASCII.GetString(buffer.Slice(0, lf.Value).ToArray()).TrimEnd('\r');
            input.AdvanceTo(buffer.GetPosition(1, lf.Value));
            return line;
        }
    }

    private void Enable(ImapCommand c)
    {
        // RFC 5161: only what is enabled now is listed.
        var enabled = new List<string>();
        foreach (var capability in c.Arguments)
        {
            if (capability == "IMAP4REV2" && !_rev2)
            {
                _rev2 = true;
                enabled.Add("IMAP4rev2");
            }
        }

        W.Raw("* ENABLED" + (enabled.Count > 0 ? " " + string.Join(' ', enabled) : string.Empty) + "\r\n");
        Ok(c, "ENABLE completed");
    }

    private void Ok(ImapCommand c, string text) => W.Raw(c.Tag + " OK " + text + "\r\n");

    private async Task BadAsync(string? tag, string text)
    {
        W.Raw((tag ?? "*") + " BAD " + text + "\r\n");
        await NoteBadAsync();
    }

    private async Task NoteBadAsync()
    {
        if (++_badCommands >= _services.Options.MaxBadCommands)
        {
            // RFC 9051 §7.1.5: BYE, then close.
            MailboxProtocolLog.TooManyErrors(_services.Logger, "IMAP", _connection.Client, _badCommands);
            W.Raw("* BYE Too many errors\r\n");
            await FlushAsync();
            _state = ImapState.Logout;
        }
    }

    private ValueTask<FlushResult> FlushAsync() => _connection.Output.FlushAsync(Closed);
}
