using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using MailMesh.Mailbox.Protocols;
using MailMesh.ServiceDefaults.Security;
using MailMesh.ServiceDefaults.Tls;
using MailMesh.Smtp;
using MailMesh.Smtp.Client;
using MailMesh.Storage;

namespace MailMesh.Mailbox.Pop3;

/// <summary>The singletons every POP3 session uses.</summary>
internal sealed record Pop3Services(
    MailboxProtocolOptions Options,
    MailboxTlsOptions Tls,
    ServerCertificate Certificate,
    MailboxLogin Login,
    IMailStore Store,
    TimeProvider Time,
    ILogger Logger);

/// <summary>
/// One POP3 session (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), AUTH PLAIN (RFC 5034, RFC 4616) and the
/// response codes of RFC 2449 §8 and RFC 3206. The maildrop is the account's INBOX, listed once at login under the
/// maildrop lock (RFC 1939 §8: one session per maildrop, across replicas); DELE only marks, and QUIT commits the marks
/// in one transaction (RFC 1939 §6: the UPDATE state). Message content is streamed from the store, byte-stuffed
/// (RFC 1939 §3), never held whole.
/// </summary>
internal sealed class Pop3Session
{
    /// <summary>The reader's limit: AUTH lines may exceed the 255 octets of commands (RFC 5034 §4).</summary>
    private const int MaxAuthLine = 2048;

    /// <summary>RFC 2449 §4: commands are at most 255 octets including CRLF.</summary>
    private const int MaxCommandLine = 255;

    private readonly MailConnection _connection;
    private readonly Pop3Services _services;
    private SmtpLineReader _lines = new(MaxAuthLine);
    private Pop3State _state = Pop3State.Authorization;
    private string? _user;
    private bool _awaitingAuthResponse;
    private int _badCommands;
    private MailAccount? _account;
    private MailFolder? _inbox;
    private MaildropLock? _lock;
    private List<Pop3Message> _messages = [];

    public Pop3Session(MailConnection connection, Pop3Services services)
    {
        _connection = connection;
        _services = services;
    }

    private enum Pop3State
    {
        Authorization,
        Transaction,
        Closed,
    }

    private sealed record Pop3Message(long Uid, long Size)
    {
        public bool Deleted { get; set; }
    }

    private PlaintextAuthAllowed AuthAllowed => _connection.IsTls || _services.Options.AllowPlaintextAuth ? PlaintextAuthAllowed.Yes : PlaintextAuthAllowed.No;

    private enum PlaintextAuthAllowed
    {
        No,
        Yes,
    }

    public async Task RunAsync()
    {
        try
        {
            // RFC 1939 §4: the greeting; APOP is not offered, so no timestamp.
            Write("+OK " + _services.Options.HostName + " MailMesh POP3 server ready");
            await _connection.Output.FlushAsync(_connection.Closed);
            await LoopAsync();
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException or Microsoft.AspNetCore.Connections.ConnectionResetException)
        {
            MailboxProtocolLog.ConnectionLost(_services.Logger, "POP3", _connection.Client, ex);
        }
        finally
        {
            await ReleaseLockAsync();
        }
    }

    /// <summary>Gives the maildrop lock back (once): at QUIT before its reply, else when the connection ends.</summary>
    private async Task ReleaseLockAsync()
    {
        if (_lock is { } held)
        {
            _lock = null;
            await held.DisposeAsync();
        }
    }

    private async Task LoopAsync()
    {
        var lines = new List<byte[]?>();
        while (_state != Pop3State.Closed)
        {
            ReadResult result;
            var timeout = _state == Pop3State.Transaction ? _services.Options.Pop3IdleTimeout : _services.Options.LoginTimeout;
            using (var deadline = _connection.StartDeadline(timeout))
            {
                try
                {
                    result = await _connection.Input.ReadAsync(deadline.Token);
                }
                catch (OperationCanceledException) when (deadline.TimedOut)
                {
                    // RFC 1939 §3: the autologout timer; the session ends without entering UPDATE (no deletions).
                    MailboxProtocolLog.TimedOut(_services.Logger, "POP3", _connection.Client);
                    Write("-ERR [SYS/TEMP] Autologout; idle for too long");
                    await _connection.Output.FlushAsync(_connection.Closed);
                    return;
                }
            }

            var buffer = result.Buffer;
            var reader = new SequenceReader<byte>(buffer);
            lines.Clear();
            while (_lines.TryReadLine(ref reader, out var line) is var status && status != LineStatus.NeedMore)
            {
                // null stands for a line refused by the reader (too long, bare CR or LF).
                lines.Add(status == LineStatus.Line ? line.ToArray() : null);
            }

            var unread = reader.Remaining > 0;
            _connection.Input.AdvanceTo(reader.Position, buffer.End);
            for (var i = 0; i < lines.Count && _state != Pop3State.Closed; i++)
            {
                var startTls = await HandleAsync(lines[i]);
                if (startTls)
                {
                    if (i + 1 < lines.Count || unread)
                    {
                        // RFC 2595 §4 / CVE-2011-0411: nothing pipelined after STLS may be read as a protected command.
                        MailboxProtocolLog.DiscardedAfterStartTls(_services.Logger, "POP3", _connection.Client);
                    }

                    await _connection.Output.FlushAsync(_connection.Closed);
                    if (!await _connection.StartTlsAsync(_services.Certificate, _services.Tls.HandshakeTimeout, _connection.Closed))
                    {
                        return;
                    }

                    _lines = new SmtpLineReader(MaxAuthLine);
                    break;
                }
            }

            await _connection.Output.FlushAsync(_connection.Closed);
            if (result.IsCompleted)
            {
                return;
            }
        }
    }

    /// <summary>Handles one line; true when it was an accepted STLS (the caller starts TLS).</summary>
    private async Task<bool> HandleAsync(byte[]? line)
    {
        if (line is null)
        {
            _awaitingAuthResponse = false;
            Bad("-ERR Line too long or not ended by CRLF");
            return false;
        }

        if (_awaitingAuthResponse)
        {
            _awaitingAuthResponse = false;
            await AuthResponseAsync(line);
            return false;
        }

        if (line.Length > MaxCommandLine - 2 && !StartsWith(line, "AUTH "))
        {
            Bad("-ERR Line too long");
            return false;
        }

        // RFC 1939 §3: a keyword of three or four characters, case-insensitive, then arguments separated by one space.
        var text = Encoding.UTF8.GetString(line);
        var space = text.IndexOf(' ', StringComparison.Ordinal);
        var keyword = (space < 0 ? text : text[..space]).ToUpperInvariant();
        var argument = space < 0 ? string.Empty : text[(space + 1)..];
        switch (keyword)
        {
            case "CAPA":
                Capabilities();
                return false;
            case "QUIT":
                await QuitAsync();
                return false;
            case "NOOP" when _state == Pop3State.Transaction:
                Write("+OK");
                return false;
        }

        if (_state == Pop3State.Authorization)
        {
            switch (keyword)
            {
                case "STLS":
                    return StartTls();
                case "USER":
                    User(argument);
                    return false;
                case "PASS":
                    await PassAsync(argument);
                    return false;
                case "AUTH":
                    await AuthAsync(argument);
                    return false;
                case "STAT" or "LIST" or "UIDL" or "RETR" or "TOP" or "DELE" or "RSET" or "NOOP":
                    Bad("-ERR Not authenticated");
                    return false;
                default:
                    Bad("-ERR Unknown command");
                    return false;
            }
        }

        switch (keyword)
        {
            case "STAT":
                Stat(argument);
                break;
            case "LIST" or "UIDL":
                Listing(argument, keyword == "UIDL");
                break;
            case "RETR":
                await RetrieveAsync(argument, top: null);
                break;
            case "TOP":
                {
                    var parts = argument.Split(' ');
                    if (parts.Length != 2 || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var count))
                    {
                        Bad("-ERR Syntax: TOP msg n");
                        break;
                    }

                    await RetrieveAsync(parts[0], count);
                    break;
                }

            case "DELE":
                Delete(argument);
                break;
            case "RSET":
                if (argument.Length > 0)
                {
                    Bad("-ERR RSET takes no argument");
                    break;
                }

                foreach (var message in _messages)
                {
                    message.Deleted = false;
                }

                Write("+OK maildrop has " + Count() + " messages (" + Octets() + " octets)");
                break;
            case "USER" or "PASS" or "AUTH" or "STLS":
                Bad("-ERR Already authenticated");
                break;
            default:
                Bad("-ERR Unknown command");
                break;
        }

        return false;
    }

    private void Capabilities()
    {
        // RFC 2449 §5-6: one capability per line, then ".".
        Write("+OK Capability list follows");
        Write("TOP");
        Write("UIDL");
        Write("RESP-CODES");
        Write("AUTH-RESP-CODE");
        Write("PIPELINING");
        if (_state == Pop3State.Authorization)
        {
            if (AuthAllowed == PlaintextAuthAllowed.Yes)
            {
                Write("USER");
                Write("SASL PLAIN");
            }

            if (!_connection.IsTls && _services.Certificate.IsEnabled)
            {
                Write("STLS");
            }
        }

        Write("IMPLEMENTATION MailMesh");
        Write(".");
    }

    private bool StartTls()
    {
        if (_connection.IsTls || !_services.Certificate.IsEnabled)
        {
            Bad("-ERR TLS is not available");
            return false;
        }

        Write("+OK Begin TLS negotiation");
        return true;
    }

    private void User(string argument)
    {
        if (AuthAllowed == PlaintextAuthAllowed.No)
        {
            // RFC 2595 §2.2: no clear-text password over an unprotected connection.
            Bad("-ERR [AUTH] Plaintext authentication is disallowed without TLS; use STLS");
            return;
        }

        if (argument.Length == 0)
        {
            Bad("-ERR Syntax: USER name");
            return;
        }

        _user = argument;
        Write("+OK");
    }

    private async Task PassAsync(string argument)
    {
        if (_user is null)
        {
            Bad("-ERR USER first");
            return;
        }

        var user = _user;
        _user = null;
        await LoginAsync(user, argument);
    }

    private async Task AuthAsync(string argument)
    {
        var parts = argument.Split(' ', 2);
        if (argument.Length == 0)
        {
            // RFC 5034 §4 leaves AUTH without arguments to RFC 1734-era clients: list the mechanisms.
            Write("+OK");
            if (AuthAllowed == PlaintextAuthAllowed.Yes)
            {
                Write("PLAIN");
            }

            Write(".");
            return;
        }

        if (!parts[0].Equals("PLAIN", StringComparison.OrdinalIgnoreCase))
        {
            Bad("-ERR Unsupported authentication mechanism");
            return;
        }

        if (AuthAllowed == PlaintextAuthAllowed.No)
        {
            Bad("-ERR [AUTH] Plaintext authentication is disallowed without TLS; use STLS");
            return;
        }

        if (parts.Length == 1)
        {
            // RFC 5034 §4: an empty challenge.
            Write("+ ");
            _awaitingAuthResponse = true;
            return;
        }

        await AuthResponseAsync(Encoding.ASCII.GetBytes(parts[1]));
    }

    private async Task AuthResponseAsync(byte[] response)
    {
        if (response is [(byte)'*'])
        {
            // RFC 5034 §4: "*" cancels.
            Bad("-ERR Authentication cancelled");
            return;
        }

        if (response is [(byte)'='] || !MailboxLogin.TryDecodePlain(response, out var user, out var password))
        {
            Bad("-ERR Malformed PLAIN response");
            return;
        }

        await LoginAsync(user, password);
    }

    private async Task LoginAsync(string user, string password)
    {
        if (_services.Login.IsLockedOut(_connection.Client))
        {
            Write("-ERR [LOGIN-DELAY] Too many failed logins; try again later");
            return;
        }

        var (outcome, account) = await _services.Login.LoginAsync("pop3", _connection.Client, user, password, _connection.Closed);
        if (outcome != AuthOutcome.Succeeded || account is null)
        {
            MailboxProtocolLog.LoginFailed(_services.Logger, "POP3", _connection.Client, outcome.ToString());
            Bad(outcome == AuthOutcome.LockedOut ? "-ERR [LOGIN-DELAY] Too many failed logins; try again later" : "-ERR [AUTH] Authentication failed");
            return;
        }

        var store = _services.Store;
        var inbox = await store.GetFolderAsync(account.Id, MailFolder.Inbox, _connection.Closed);
        if (inbox is null)
        {
            Write("-ERR [SYS/PERM] The maildrop does not exist");
            return;
        }

        var held = await MaildropLock.TryAcquireAsync(store, account.Id, _services.Time, lease: null, _connection.Closed);
        if (held is null)
        {
            // RFC 2449 §8.1.1.
            Write("-ERR [IN-USE] The maildrop is in use by another session");
            return;
        }

        var messages = new List<Pop3Message>();
        long from = 1;
        while (true)
        {
            var page = await store.ListMessagesAsync(account.Id, inbox.Id, from, 1000, _connection.Closed);
            messages.AddRange(page.Select(m => new Pop3Message(m.Uid, m.Size)));
            if (page.Count < 1000)
            {
                break;
            }

            from = page[^1].Uid + 1;
        }

        _lock = held;
        _account = account;
        _inbox = inbox;
        _messages = messages;
        _state = Pop3State.Transaction;
        MailboxProtocolLog.LoggedIn(_services.Logger, "POP3", _connection.Client, account.Address);
        Write("+OK maildrop has " + Count() + " messages (" + Octets() + " octets)");
    }

    private void Stat(string argument)
    {
        if (argument.Length > 0)
        {
            Bad("-ERR STAT takes no argument");
            return;
        }

        // RFC 1939 §5: messages marked deleted are not counted.
        Write("+OK " + Count() + " " + Octets());
    }

    private void Listing(string argument, bool uidl)
    {
        if (argument.Length > 0)
        {
            if (Message(argument) is not var (number, message))
            {
                return;
            }

            Write("+OK " + number + " " + (uidl ? UniqueId(message) : message.Size.ToString(CultureInfo.InvariantCulture)));
            return;
        }

        Write(uidl ? "+OK unique-id listing follows" : "+OK " + Count() + " messages (" + Octets() + " octets)");
        for (var i = 0; i < _messages.Count; i++)
        {
            var message = _messages[i];
            if (!message.Deleted)
            {
                Write((i + 1).ToString(CultureInfo.InvariantCulture) + " " + (uidl ? UniqueId(message) : message.Size.ToString(CultureInfo.InvariantCulture)));
            }
        }

        Write(".");
    }

    // RFC 1939 §7: 1-70 characters 0x21-0x7E, unique and persistent: UIDVALIDITY and UID together are both.
    private string UniqueId(Pop3Message message) =>
        _inbox!.UidValidity.ToString(CultureInfo.InvariantCulture) + "." + message.Uid.ToString(CultureInfo.InvariantCulture);

    private void Delete(string argument)
    {
        if (Message(argument) is not var (number, message))
        {
            return;
        }

        message.Deleted = true;
        Write("+OK message " + number + " deleted");
    }

    private async Task RetrieveAsync(string argument, long? top)
    {
        if (Message(argument) is not var (_, message))
        {
            return;
        }

        Stream? content;
        try
        {
            content = await _services.Store.OpenMessageAsync(_account!.Id, _inbox!.Id, message.Uid, _connection.Closed);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            MailboxProtocolLog.StoreFailed(_services.Logger, "POP3", ex);
            Write("-ERR [SYS/TEMP] The message cannot be read now");
            return;
        }

        if (content is null)
        {
            // Expunged by an IMAP session since the listing (the maildrop lock covers POP3 sessions only).
            Write("-ERR [SYS/PERM] The message no longer exists");
            return;
        }

        await using (content)
        {
            Write(top is null ? "+OK " + message.Size + " octets" : "+OK top of message follows");
            await _connection.Output.FlushAsync(_connection.Closed);
            var stuffing = new DotStuffingWriter(_connection.Output);
            var limit = new TopLimit(top);
            var chunk = ArrayPool<byte>.Shared.Rent(16384);
            try
            {
                int read;
                while (!limit.Done && (read = await content.ReadAsync(chunk, _connection.Closed)) > 0)
                {
                    var take = limit.Take(chunk.AsSpan(0, read));
                    stuffing.Write(chunk.AsSpan(0, take));
                    await _connection.Output.FlushAsync(_connection.Closed);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }

            // RFC 1939 §3: the multi-line response ends with CRLF "." CRLF.
            stuffing.Complete();
        }
    }

    /// <summary>
    /// TOP msg n (RFC 1939 §7): the header, the blank line and the first n lines of the body. Counts lines as content
    /// streams by, whatever the chunking.
    /// </summary>
    private sealed class TopLimit(long? lines)
    {
        private bool _inBody;
        private bool _lineStart = true;
        private long _bodyLines;

        public bool Done { get; private set; }

        /// <summary>How much of <paramref name="chunk"/> to send.</summary>
        public int Take(ReadOnlySpan<byte> chunk)
        {
            if (lines is null)
            {
                return chunk.Length;
            }

            for (var i = 0; i < chunk.Length; i++)
            {
                if (_inBody && _lineStart && _bodyLines >= lines)
                {
                    Done = true;
                    return i;
                }

                var b = chunk[i];
                if (b == '\n')
                {
                    if (!_inBody && _lineStart)
                    {
                        // The empty line that ends the header.
                        _inBody = true;
                    }
                    else if (_inBody)
                    {
                        _bodyLines++;
                    }

                    _lineStart = true;
                }
                else if (b != '\r')
                {
                    _lineStart = false;
                }
            }

            return chunk.Length;
        }
    }

    private async Task QuitAsync()
    {
        if (_state != Pop3State.Transaction)
        {
            Write("+OK " + _services.Options.HostName + " POP3 server signing off");
            _state = Pop3State.Closed;
            return;
        }

        // RFC 1939 §6: the UPDATE state. All marked messages go in one transaction, or none.
        var deleted = _messages.Where(m => m.Deleted).Select(m => m.Uid).ToList();
        _state = Pop3State.Closed;
        if (deleted.Count > 0)
        {
            if (_lock!.Lost.IsCancellationRequested)
            {
                Write("-ERR [SYS/TEMP] The maildrop lock was lost; no messages were deleted");
                return;
            }

            try
            {
                await _services.Store.DeleteMessagesAsync(_account!.Id, _inbox!.Id, deleted, _connection.Closed);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                MailboxProtocolLog.StoreFailed(_services.Logger, "POP3", ex);
                Write("-ERR [SYS/TEMP] Deleting failed; no messages were deleted");
                return;
            }
        }

        // The lock goes before the reply: a client that reads +OK and opens its next session at once must find the
        // maildrop free (it found it still locked, now and then, when the lock went only as the connection closed).
        await ReleaseLockAsync();
        var left = _messages.Count - deleted.Count;
        Write("+OK " + _services.Options.HostName + " POP3 server signing off (" + (left == 0 ? "maildrop empty" : left + " messages left") + ")");
    }

    /// <summary>A message-number argument: an existing, undeleted message, else the -ERR is written and null returned.</summary>
    private (int Number, Pop3Message Message)? Message(string argument)
    {
        if (!int.TryParse(argument, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number < 1)
        {
            Bad("-ERR Syntax: a message number is required");
            return null;
        }

        if (number > _messages.Count)
        {
            Write("-ERR No such message");
            return null;
        }

        var message = _messages[number - 1];
        if (message.Deleted)
        {
            Write("-ERR Message " + number + " already deleted");
            return null;
        }

        return (number, message);
    }

    private int Count() => _messages.Count(m => !m.Deleted);

    private long Octets() => _messages.Where(m => !m.Deleted).Sum(m => m.Size);

    private void Bad(string reply)
    {
        Write(reply);
        if (++_badCommands >= _services.Options.MaxBadCommands)
        {
            Write("-ERR Too many errors; closing");
            MailboxProtocolLog.TooManyErrors(_services.Logger, "POP3", _connection.Client, _badCommands);
            _state = Pop3State.Closed;
        }
    }

    private void Write(string line)
    {
        var output = _connection.Output;
        var span = output.GetSpan(Encoding.UTF8.GetMaxByteCount(line.Length) + 2);
        var n = Encoding.UTF8.GetBytes(line, span);
        span[n++] = (byte)'\r';
        span[n++] = (byte)'\n';
        output.Advance(n);
    }

    private static bool StartsWith(byte[] line, string prefix) =>
        line.Length >= prefix.Length && Ascii.EqualsIgnoreCase(line.AsSpan(0, prefix.Length), Encoding.ASCII.GetBytes(prefix));
}
