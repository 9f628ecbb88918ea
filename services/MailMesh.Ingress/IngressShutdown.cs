using Microsoft.Extensions.Options;

namespace MailMesh.Ingress;

/// <summary>
/// The two moments of a graceful stop (SIGTERM, a Kubernetes pod deletion, <c>IHostApplicationLifetime.StopApplication</c>):
/// <see cref="Draining"/> when the host starts stopping — Kestrel then stops accepting, sessions with no mail
/// transaction in progress are closed with 421 4.3.2, and transactions in progress run to their reply — and
/// <see cref="GraceEnded"/> <see cref="IngressOptions.ShutdownGracePeriod"/> later, when whatever is still open is
/// closed with 421 4.3.2 (RFC 5321 §3.8: the server may close with 421 when it must shut down). Nothing is lost either
/// way: a message is the server's only after its 250, which follows the spool commit; a client cut off before it
/// retries (RFC 5321 §4.5.4.1).
/// </summary>
internal sealed class IngressShutdown : IDisposable
{
    private readonly CancellationTokenSource _graceEnded;
    private readonly CancellationTokenRegistration _registration;

    public IngressShutdown(IHostApplicationLifetime lifetime, IOptions<IngressOptions> options, TimeProvider time)
    {
        Draining = lifetime.ApplicationStopping;
        _graceEnded = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        var grace = options.Value.ShutdownGracePeriod;
        _registration = Draining.Register(static state =>
        {
            var (source, period) = ((CancellationTokenSource, TimeSpan))state!;
            try
            {
                source.CancelAfter(period);
            }
            catch (ObjectDisposedException)
            {
                // The host was disposed without stopping first: nothing left to drain.
            }
        }, (_graceEnded, grace));
    }

    /// <summary>Signalled when the host begins to stop: accept no new session or transaction.</summary>
    public CancellationToken Draining { get; }

    /// <summary>Signalled when the grace period after <see cref="Draining"/> has run out: close everything.</summary>
    public CancellationToken GraceEnded => _graceEnded.Token;

    public void Dispose()
    {
        _registration.Dispose();
        _graceEnded.Dispose();
    }
}
