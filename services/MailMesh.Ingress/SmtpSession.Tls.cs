using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using MailMesh.ServiceDefaults.Tls;
using MailMesh.Smtp;

namespace MailMesh.Ingress;

/// <summary>STARTTLS (RFC 3207) and implicit TLS (RFC 8314): the handshake, and the session restarting over the SslStream.</summary>
internal sealed partial class SmtpSession
{
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
        _mode = ReadMode.Command;
        _auth = null;
        _state = SmtpState.Connected;
        _helo = null;
        _esmtp = false;
        _authenticatedUser = null;
        return true;
    }
}
