using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using MailMesh.ServiceDefaults.Tls;
using Microsoft.AspNetCore.Connections;

namespace MailMesh.Mailbox.Protocols;

/// <summary>
/// One POP3 or IMAP connection: the pipes a session reads and writes (the transport's, or a TLS stream's after STLS,
/// STARTTLS or on an implicit-TLS listener), the client's address, and the read timeout, on the TimeProvider.
/// </summary>
internal sealed class MailConnection : IAsyncDisposable
{
    private readonly ConnectionContext _connection;
    private readonly TimeProvider _time;
    private SslStream? _ssl;

    public MailConnection(ConnectionContext connection, TimeProvider time)
    {
        _connection = connection;
        _time = time;
        Input = connection.Transport.Input;
        Output = connection.Transport.Output;
        Client = (connection.RemoteEndPoint as IPEndPoint)?.Address.ToString() ?? "unknown";
    }

    public PipeReader Input { get; private set; }

    public PipeWriter Output { get; private set; }

    /// <summary>The client's address (its network is the unit of the login throttle).</summary>
    public string Client { get; }

    public bool IsTls => _ssl is not null;

    public CancellationToken Closed => _connection.ConnectionClosed;

    /// <summary>
    /// Starts TLS over the transport. The caller has consumed everything read so far; octets the client pipelined after
    /// the STLS/STARTTLS command are dropped (RFC 2595 §3.1 / RFC 9051 §6.2.1: they must not be read as protected
    /// commands, CVE-2011-0411). False when the handshake failed (the connection is then unusable).
    /// </summary>
    public async Task<bool> StartTlsAsync(ServerCertificate certificate, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var context = certificate.Current ?? throw new InvalidOperationException("TLS is not configured.");
        var ssl = new SslStream(new DuplexPipeStream(_connection.Transport), leaveInnerStreamOpen: false);
        using var deadline = new CancellationTokenSource(timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, cancellationToken);
        try
        {
            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificateContext = context, ClientCertificateRequired = false }, linked.Token);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or OperationCanceledException)
        {
            await ssl.DisposeAsync();
            return false;
        }

        _ssl = ssl;
        Input = PipeReader.Create(ssl, new StreamPipeReaderOptions(leaveOpen: true));
        Output = PipeWriter.Create(ssl, new StreamPipeWriterOptions(leaveOpen: true));
        return true;
    }

    /// <summary>A token that fires after <paramref name="timeout"/> (on the TimeProvider) or when the connection closes.</summary>
    public Deadline StartDeadline(TimeSpan timeout) => new(timeout, _time, _connection.ConnectionClosed);

    public async ValueTask DisposeAsync()
    {
        if (_ssl is not null)
        {
            await Input.CompleteAsync();
            await Output.CompleteAsync();
            await _ssl.DisposeAsync();
        }

        await _connection.Transport.Input.CompleteAsync();
        await _connection.Transport.Output.CompleteAsync();
    }
}

/// <summary>A read deadline: fires after its timeout or when the connection closes; dispose it when the read is done.</summary>
internal sealed class Deadline : IDisposable
{
    private readonly CancellationTokenSource _timer;
    private readonly CancellationTokenRegistration _closed;

    public Deadline(TimeSpan timeout, TimeProvider time, CancellationToken closed)
    {
        _timer = new CancellationTokenSource(timeout, time);
        _closed = closed.UnsafeRegister(static state => ((CancellationTokenSource)state!).Cancel(), _timer);
    }

    public CancellationToken Token => _timer.Token;

    /// <summary>True when the timeout (not the connection closing) fired.</summary>
    public bool TimedOut => _timer.IsCancellationRequested;

    public void Dispose()
    {
        _closed.Dispose();
        _timer.Dispose();
    }
}
