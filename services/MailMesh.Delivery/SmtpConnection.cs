using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using MailMesh.Smtp.Client;

namespace MailMesh.Delivery;

/// <summary>Why an SMTP conversation could not go on. The message text is what the recipient results report.</summary>
internal enum SmtpFailureKind
{
    /// <summary>TCP connect refused, unreachable or timed out (RFC 3463 4.4.1 "No answer from host").</summary>
    ConnectFailed,

    /// <summary>The server did not answer in time (4.4.2 "Bad connection").</summary>
    Timeout,

    /// <summary>The connection closed or broke mid-conversation (4.4.2).</summary>
    ConnectionLost,

    /// <summary>The server sent something that is not an SMTP reply (4.5.0 "Other or undefined protocol status").</summary>
    ProtocolError,

    /// <summary>
    /// The policy requires TLS and the server did not offer STARTTLS, or refused it (RFC 3463 4.7.4 "Security
    /// features not supported"; Postfix: "TLS is required, but was not offered by host").
    /// </summary>
    TlsNotOffered,

    /// <summary>The TLS handshake failed, or the certificate failed verification (RFC 3463 4.7.5 "Cryptographic failure").</summary>
    TlsFailed,
}

internal sealed class SmtpConnectionException(SmtpFailureKind kind, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public SmtpFailureKind Kind { get; } = kind;
}

/// <summary>
/// One client SMTP connection: TCP, the greeting, EHLO (or HELO), then any number of transactions. Commands are
/// buffered until <see cref="FlushAsync"/> so a pipelining caller (RFC 2920) sends a whole batch in one write.
/// Every read and write has its own RFC 5321 §4.5.3.2 timeout; a timeout or I/O error marks the connection broken.
/// </summary>
internal sealed class SmtpConnection : IAsyncDisposable
{
    /// <summary>Content is flushed in blocks of this size, each under the data-block timeout (RFC 5321 §4.5.3.2.5).</summary>
    private const int DataBlockSize = 64 * 1024;

    /// <summary>
    /// The output pipe's segments are at least a data block (plus room for dot-stuffing), so a block goes to the socket
    /// (or to TLS, as full-size records) in one or two writes: with the default 4 KiB segments each flush wrote every
    /// segment on its own, 16 <c>sendto</c>s (and 16 TLS records) per 64 KiB block (issue 8, counted with strace).
    /// </summary>
    internal static readonly StreamPipeWriterOptions WriterOptions = new(minimumBufferSize: DataBlockSize + (DataBlockSize / 8), leaveOpen: true);

    private readonly Socket _socket;
    private readonly ServerReplyParser _parser = new();
    private Stream _stream;
    private PipeReader _reader;
    private PipeWriter _writer;
    private bool _disposed;

    private SmtpConnection(Socket socket, string hostName, IPEndPoint remote, TimeProvider time)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(leaveOpen: true));
        _writer = PipeWriter.Create(_stream, WriterOptions);
        HostName = hostName;
        RemoteEndPoint = remote;
        LastUsed = time.GetUtcNow();
    }

    /// <summary>The exchanger's name (from MX), for results and logs.</summary>
    public string HostName { get; }

    public IPEndPoint RemoteEndPoint { get; }

    public EhloCapabilities Capabilities { get; private set; } = EhloCapabilities.None;

    /// <summary>The server's greeting line.</summary>
    public ServerReply? Greeting { get; private set; }

    /// <summary>True once STARTTLS succeeded (RFC 3207): everything after the handshake is encrypted.</summary>
    public bool IsTls { get; private set; }

    /// <summary>True when the TLS certificate chained to a trusted root and matched the MX host name.</summary>
    public bool IsVerified { get; private set; }

    /// <summary>"TLSv1.3 TLS_AES_256_GCM_SHA384" or "none", for logs and results.</summary>
    public string TlsDescription { get; private set; } = "none";

    /// <summary>The negotiated protocol ("TLSv1.3", "TLSv1.2") once STARTTLS succeeded; "none" before.</summary>
    public string TlsProtocol { get; private set; } = "none";

    /// <summary>The negotiated cipher suite (IANA name) once STARTTLS succeeded; null before.</summary>
    public string? TlsCipher { get; private set; }

    /// <summary>True when the certificate was verified against the exchanger's TLSA records (DANE, RFC 7672).</summary>
    public bool IsDaneVerified { get; private set; }

    /// <summary>Transactions started on this connection.</summary>
    public int Transactions { get; set; }

    /// <summary>When the connection last finished a transaction (for idle expiry).</summary>
    public DateTimeOffset LastUsed { get; set; }

    /// <summary>False once an I/O error, a timeout, a protocol error or a 421 made the connection unusable.</summary>
    public bool IsUsable { get; private set; } = true;

    /// <summary>Marks the connection as not reusable (e.g. the server said 421, RFC 5321 §3.8).</summary>
    public void MarkUnusable() => IsUsable = false;

    /// <summary>The name said in EHLO/HELO when it is a pool address's (null: Delivery:HeloName).</summary>
    public string? EhloName { get; private init; }

    /// <summary>
    /// Connects, reads the greeting, says EHLO (HELO if EHLO is refused with 5xx, RFC 5321 §3.2) and negotiates TLS as
    /// <paramref name="tlsMode"/> asks (RFC 3207). Returns the connection, or the server's refusal (a non-220
    /// greeting or a failed EHLO/HELO) with the connection closed. Throws <see cref="SmtpConnectionException"/> when
    /// the conversation fails, including <see cref="SmtpFailureKind.TlsNotOffered"/> and
    /// <see cref="SmtpFailureKind.TlsFailed"/> when the TLS policy cannot be met.
    /// </summary>
    /// <param name="source">The pool address to connect from (bound before connect) and whose EHLO name to say; null:
    /// the address the OS picks, and Delivery:HeloName (docs/delivery.md "IP pools").</param>
    public static async Task<(SmtpConnection? Connection, ServerReply? Refusal)> OpenAsync(
        string hostName, IPEndPoint remote, TlsMode tlsMode, TlsTrust trust, DeliveryOptions options, TimeProvider time,
        CancellationToken cancellationToken, Pools.SourceAddress? source = null)
    {
        var socket = new Socket(remote.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (source is not null)
            {
                socket.Bind(new IPEndPoint(source.Address, 0));
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.ConnectTimeout);
            await socket.ConnectAsync(remote, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new SmtpConnectionException(SmtpFailureKind.ConnectFailed, $"connect to {remote} timed out after {options.ConnectTimeout}");
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new SmtpConnectionException(SmtpFailureKind.ConnectFailed, $"connect to {remote} failed: {ex.Message}", ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var connection = new SmtpConnection(socket, hostName, remote, time) { EhloName = source?.EhloName };
        try
        {
            // RFC 5321 §3.1: the server speaks first. §4.5.3.2.1: wait up to 5 minutes for it.
            var greeting = await connection.ReadReplyAsync(options.GreetingTimeout, "greeting", cancellationToken);
            connection.Greeting = greeting;
            if (greeting.Code != 220)
            {
                // §3.1: after a 554 greeting the client should QUIT; a 421 server closes itself.
                await connection.CloseAsync(sendQuit: greeting.Code != 421, options.QuitTimeout);
                return (null, greeting);
            }

            if (await connection.HelloAsync(options, allowHelo: true, cancellationToken) is { } refusal)
            {
                return (null, refusal);
            }

            if (tlsMode == TlsMode.None)
            {
                return (connection, null);
            }

            if (!connection.Capabilities.StartTls)
            {
                if (tlsMode == TlsMode.Opportunistic)
                {
                    return (connection, null);
                }

                await connection.CloseAsync(sendQuit: true, options.QuitTimeout);
                throw new SmtpConnectionException(SmtpFailureKind.TlsNotOffered, "TLS is required, but was not offered by the server");
            }

            if (await connection.StartTlsAsync(hostName, tlsMode, trust, options, cancellationToken) is { } tlsRefusal)
            {
                return (null, tlsRefusal);
            }

            return (connection, null);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>EHLO (and HELO when allowed and EHLO is refused); the refusal, with the connection closed, or null.</summary>
    private async Task<ServerReply?> HelloAsync(DeliveryOptions options, bool allowHelo, CancellationToken cancellationToken)
    {
        var ehlo = await CommandAsync($"EHLO {EhloName ?? options.HeloName}", options.CommandTimeout, "EHLO", cancellationToken);
        if (ehlo.IsSuccess)
        {
            Capabilities = EhloCapabilities.Parse(ehlo);
            return null;
        }

        if (allowHelo && ehlo.IsPermanent && ehlo.Code != 421)
        {
            // RFC 5321 §3.2: a server that does not support extensions answers EHLO with 500/502; fall back to HELO.
            var helo = await CommandAsync($"HELO {EhloName ?? options.HeloName}", options.CommandTimeout, "HELO", cancellationToken);
            if (helo.IsSuccess)
            {
                Capabilities = EhloCapabilities.None;
                return null;
            }

            await CloseAsync(sendQuit: helo.Code != 421, options.QuitTimeout);
            return helo;
        }

        await CloseAsync(sendQuit: ehlo.Code != 421, options.QuitTimeout);
        return ehlo;
    }

    /// <summary>
    /// RFC 3207 §4: STARTTLS, the handshake over the same socket, then EHLO again (§4.2: the client MUST discard what
    /// it learnt before TLS). Returns a refusal of the second EHLO (connection closed), or null when the session is
    /// ready; for <see cref="TlsMode.Opportunistic"/> a refused STARTTLS leaves the session in clear text.
    /// </summary>
    private async Task<ServerReply?> StartTlsAsync(
        string hostName, TlsMode mode, TlsTrust trust, DeliveryOptions options, CancellationToken cancellationToken)
    {
        var reply = await CommandAsync("STARTTLS", options.CommandTimeout, "STARTTLS", cancellationToken);
        if (reply.Code != 220)
        {
            if (reply.Code == 421)
            {
                await CloseAsync(sendQuit: false, options.QuitTimeout);
                return reply;
            }

            if (mode == TlsMode.Opportunistic)
            {
                // RFC 3207 §4: after 454 (or 501) the client may go on without TLS.
                return null;
            }

            await CloseAsync(sendQuit: true, options.QuitTimeout);
            throw new SmtpConnectionException(SmtpFailureKind.TlsNotOffered, $"TLS is required, but the server refused STARTTLS: {reply}");
        }

        // RFC 3207 §4.2 (and CVE-2011-0411): nothing the server sent in clear text after the 220 may be trusted; bytes
        // already buffered here would be read as if they came over TLS, so they make the session unusable.
        if (_reader.TryRead(out var early))
        {
            var pending = early.Buffer.Length;
            _reader.AdvanceTo(early.Buffer.Start, early.Buffer.End);
            if (pending > 0)
            {
                throw Broken(SmtpFailureKind.TlsFailed, "the server sent data after its 220 reply to STARTTLS");
            }
        }

        await _reader.CompleteAsync();
        await _writer.CompleteAsync();

        var check = new CertificateCheck(false, null);
        var ssl = new SslStream(_stream, leaveInnerStreamOpen: false);
        _stream = ssl;
        var authentication = new SslClientAuthenticationOptions
        {
            // SNI and the RFC 6125 name check use the MX host name (an address literal is checked as an IP address).
            TargetHost = TargetHost(hostName, RemoteEndPoint),
            CertificateRevocationCheckMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
            RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
            {
                check = trust.Evaluate(certificate, chain, errors);

                // Opportunistic and required sessions encrypt with any certificate (RFC 7435 §1: unauthenticated
                // encryption beats clear text); only a verified session insists on a trusted, matching one.
                return mode != TlsMode.Verified || check.Verified;
            },
        };

        using (var timeout = Timeout(options.Tls.HandshakeTimeout, cancellationToken))
        {
            try
            {
                await ssl.AuthenticateAsClientAsync(authentication, timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw Broken(SmtpFailureKind.TlsFailed, $"TLS handshake timed out after {options.Tls.HandshakeTimeout}");
            }
            catch (AuthenticationException ex) when (mode == TlsMode.Verified && !check.Verified && check.Problem is not null)
            {
                throw Broken(SmtpFailureKind.TlsFailed, $"server certificate not verified: {check.Problem}", ex);
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException)
            {
                throw Broken(SmtpFailureKind.TlsFailed, $"TLS handshake failed: {ex.Message}", ex);
            }
        }

        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(leaveOpen: true));
        _writer = PipeWriter.Create(_stream, WriterOptions);
        IsTls = true;
        IsVerified = check.Verified;
        IsDaneVerified = check.Verified && trust.IsDane;
        TlsProtocol = ssl.SslProtocol switch
        {
            System.Security.Authentication.SslProtocols.Tls13 => "TLSv1.3",
            System.Security.Authentication.SslProtocols.Tls12 => "TLSv1.2",
            var other => other.ToString(),
        };
        TlsCipher = ssl.NegotiatedCipherSuite.ToString();
        TlsDescription = $"{TlsProtocol} {TlsCipher}";

        Capabilities = EhloCapabilities.None;
        return await HelloAsync(options, allowHelo: false, cancellationToken);
    }

    private static string TargetHost(string hostName, IPEndPoint remote) =>
        hostName.StartsWith('[') ? remote.Address.ToString() : hostName.TrimEnd('.');

    /// <summary>Buffers one command line (CRLF added). Not sent until <see cref="FlushAsync"/>.</summary>
    public void Write(string command)
    {
        // RFC 6531: with SMTPUTF8 the envelope may carry UTF-8; otherwise the caller only passes ASCII.
        var length = Encoding.UTF8.GetByteCount(command);
        var span = _writer.GetSpan(length + 2);
        Encoding.UTF8.GetBytes(command, span);
        span[length] = (byte)'\r';
        span[length + 1] = (byte)'\n';
        _writer.Advance(length + 2);
    }

    public async Task FlushAsync(TimeSpan timeout, string stage, CancellationToken cancellationToken)
    {
        using var cts = Timeout(timeout, cancellationToken);
        try
        {
            var result = await _writer.FlushAsync(cts.Token);
            if (result.IsCanceled || result.IsCompleted)
            {
                throw Broken(SmtpFailureKind.ConnectionLost, $"connection closed while sending {stage}");
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw Broken(SmtpFailureKind.Timeout, $"timed out after {timeout} sending {stage}");
        }
        catch (IOException ex)
        {
            throw Broken(SmtpFailureKind.ConnectionLost, $"connection lost while sending {stage}: {ex.Message}", ex);
        }
    }

    /// <summary>Sends one command and reads its reply.</summary>
    public async Task<ServerReply> CommandAsync(string command, TimeSpan timeout, string stage, CancellationToken cancellationToken)
    {
        Write(command);
        await FlushAsync(timeout, stage, cancellationToken);
        return await ReadReplyAsync(timeout, stage, cancellationToken);
    }

    /// <summary>Reads one complete (possibly multi-line) reply.</summary>
    public async Task<ServerReply> ReadReplyAsync(TimeSpan timeout, string stage, CancellationToken cancellationToken)
    {
        using var cts = Timeout(timeout, cancellationToken);
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(cts.Token);
                var buffer = result.Buffer;
                var reader = new SequenceReader<byte>(buffer);
                bool parsed;
                ServerReply? reply;
                try
                {
                    parsed = _parser.TryParse(ref reader, out reply);
                }
                catch (SmtpReplyException ex)
                {
                    _reader.AdvanceTo(buffer.Start, buffer.End);
                    throw Broken(SmtpFailureKind.ProtocolError, $"invalid reply to {stage}: {ex.Message}", ex);
                }

                if (parsed)
                {
                    _reader.AdvanceTo(reader.Position);
                    if (reply!.Code == 421)
                    {
                        // RFC 5321 §3.8: 421 means the server is closing the transmission channel.
                        IsUsable = false;
                    }

                    return reply;
                }

                _reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    throw Broken(SmtpFailureKind.ConnectionLost, $"connection closed by the server while waiting for the reply to {stage}");
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw Broken(SmtpFailureKind.Timeout, $"timed out after {timeout} waiting for the reply to {stage}");
        }
        catch (IOException ex)
        {
            throw Broken(SmtpFailureKind.ConnectionLost, $"connection lost while waiting for the reply to {stage}: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Sends the content as the DATA section: dot-stuffed, CRLF-terminated, then ".\r\n" (RFC 5321 §4.5.2), in
    /// blocks of <see cref="DataBlockSize"/> each flushed under <paramref name="blockTimeout"/>.
    /// </summary>
    public async Task WriteDataAsync(ReadOnlyMemory<byte> prefix, ReadOnlyMemory<byte> content, TimeSpan blockTimeout, CancellationToken cancellationToken)
    {
        var stuffing = new DotStuffingWriter(_writer);

        // A DKIM-Signature field goes first, in the same stream (it ends with CRLF, so the content starts a line).
        stuffing.Write(prefix.Span);
        for (var offset = 0; offset < content.Length; offset += DataBlockSize)
        {
            stuffing.Write(content.Span.Slice(offset, Math.Min(DataBlockSize, content.Length - offset)));
            await FlushAsync(blockTimeout, "message data", cancellationToken);
        }

        stuffing.Complete();
        await FlushAsync(blockTimeout, "end of data", cancellationToken);
    }

    /// <summary>
    /// RFC 3030 §2: the content as is (no dot-stuffing) in "BDAT size" chunks of <see cref="DataBlockSize"/> octets,
    /// the last one "BDAT size LAST". Each chunk's reply is read before the next is sent, so a server that refuses a
    /// chunk is not sent the rest (§2: after a 5xx/4xx to BDAT the transaction is over). Returns the reply to the
    /// last chunk sent: the final reply of the transaction.
    /// </summary>
    public async Task<ServerReply> SendBdatAsync(
        ReadOnlyMemory<byte> prefix, ReadOnlyMemory<byte> content, TimeSpan blockTimeout, TimeSpan finalTimeout, CancellationToken cancellationToken)
    {
        var offset = 0;
        while (true)
        {
            var size = Math.Min(DataBlockSize, content.Length - offset);
            var last = offset + size == content.Length;

            // Once the last chunk goes out the message may be delivered: from then on nothing cancels (a lost lease or a
            // shutdown must not cut off the final reply, which is what says whether it was); the timeouts still bound it.
            cancellationToken.ThrowIfCancellationRequested();
            var token = last ? CancellationToken.None : cancellationToken;
            // A DKIM-Signature field (prefix) travels in the first chunk, ahead of the content.
            Write(last ? $"BDAT {prefix.Length + size} LAST" : $"BDAT {prefix.Length + size}");
            _writer.Write(prefix.Span);
            prefix = ReadOnlyMemory<byte>.Empty;
            _writer.Write(content.Span.Slice(offset, size));
            await FlushAsync(blockTimeout, "BDAT chunk", token);
            offset += size;
            var reply = await ReadReplyAsync(last ? finalTimeout : blockTimeout, last ? "BDAT LAST" : "BDAT", token);
            if (last || !reply.IsSuccess)
            {
                return reply;
            }
        }
    }

    /// <summary>Sends QUIT (if asked and still usable), waits briefly for 221, then closes.</summary>
    public async Task CloseAsync(bool sendQuit, TimeSpan quitTimeout)
    {
        if (_disposed)
        {
            return;
        }

        if (sendQuit && IsUsable)
        {
            try
            {
                await CommandAsync("QUIT", quitTimeout, "QUIT", CancellationToken.None);
            }
            catch (SmtpConnectionException)
            {
                // RFC 5321 §4.1.1.10: the client may close after sending QUIT; nothing more is owed.
            }
        }

        await DisposeAsync();
    }

    private static CancellationTokenSource Timeout(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        return cts;
    }

    private SmtpConnectionException Broken(SmtpFailureKind kind, string message, Exception? inner = null)
    {
        IsUsable = false;
        return new SmtpConnectionException(kind, message, inner);
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        IsUsable = false;
        try
        {
            await _reader.CompleteAsync();
            await _writer.CompleteAsync();
        }
        catch (IOException)
        {
            // Unflushed bytes on a broken connection: nothing to save.
        }

        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}
