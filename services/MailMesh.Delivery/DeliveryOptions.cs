using MailMesh.ServiceDefaults;

namespace MailMesh.Delivery;

/// <summary>Outbound SMTP settings (section "Delivery"). Timeouts default to RFC 5321 §4.5.3.2.</summary>
public sealed class DeliveryOptions : IValidatedOptions
{
    public static string SectionName => "Delivery";

    /// <summary>TCP port of every exchanger (25; tests point it at sinks).</summary>
    public int Port { get; set; } = 25;

    /// <summary>Name sent in EHLO/HELO (RFC 5321 §4.1.1.1: the client's FQDN). Default: the machine name.</summary>
    public string HeloName { get; set; } = Environment.MachineName;

    /// <summary>Time to establish the TCP connection to one address.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>RFC 5321 §4.5.3.2.1: initial 220 greeting, 5 minutes.</summary>
    public TimeSpan GreetingTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>EHLO, HELO and RSET replies (not named by RFC 5321; 5 minutes as for MAIL).</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>RFC 5321 §4.5.3.2.2: MAIL command, 5 minutes.</summary>
    public TimeSpan MailTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>RFC 5321 §4.5.3.2.3: RCPT command, 5 minutes.</summary>
    public TimeSpan RcptTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>RFC 5321 §4.5.3.2.4: DATA initiation (the 354), 2 minutes.</summary>
    public TimeSpan DataInitiationTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>RFC 5321 §4.5.3.2.5: each data block written (one flush), 3 minutes.</summary>
    public TimeSpan DataBlockTimeout { get; set; } = TimeSpan.FromMinutes(3);

    /// <summary>RFC 5321 §4.5.3.2.6: reply to the final ".", 10 minutes.</summary>
    public TimeSpan DataTerminationTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long to wait for the reply to QUIT before closing anyway.</summary>
    public TimeSpan QuitTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Open SMTP sessions per destination address:port, across all concurrent deliveries.</summary>
    public int MaxConnectionsPerDestination { get; set; } = 10;

    /// <summary>Transactions on one connection before it is closed and a fresh one opened.</summary>
    public int MaxMessagesPerConnection { get; set; } = 100;

    /// <summary>An idle pooled connection is closed (QUIT) after this long.</summary>
    public TimeSpan IdleConnectionTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long to wait for the Dns service to answer ResolveMx before deferring.</summary>
    public TimeSpan ResolveTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Longest time Delivery keeps a Dns answer (it keeps it for the answer's own TTL when shorter); zero asks the Dns
    /// service for every attempt.
    /// </summary>
    public TimeSpan MxCacheMaxTtl { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Domains whose answer Delivery keeps at most; zero disables the cache.</summary>
    public int MxCacheEntries { get; set; } = 10_000;

    /// <summary>
    /// Delivery attempts one instance makes at once, whether their work items came alone (<c>DeliverMessage</c>) or in
    /// a batch (<c>DeliverMessages</c>); also the consumes it runs at once.
    /// </summary>
    public int ConcurrentDeliveries { get; set; } = 64;

    /// <summary>
    /// On a graceful stop (SIGTERM): how long deliveries in progress may run to their end-of-data reply before their
    /// cancellation token fires (MassTransit's ConsumerStopTimeout). Work not yet started goes back to the broker for
    /// another replica (a work item of a batch whose consume has begun goes back to Queue, not attempted and due at
    /// once); a delivery cut off is re-driven by Queue when its lease expires. The host's shutdown timeout and
    /// the bus's stop timeout are raised to this plus 10 seconds if shorter.
    /// </summary>
    public TimeSpan ShutdownGracePeriod { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Longest a delivery waits for one of a destination's <see cref="MaxConnectionsPerDestination"/> slots before that
    /// address counts as congested (451 4.4.5): well below Queue:LeaseDuration, so no wait outlives a lease.
    /// </summary>
    public TimeSpan ConnectionSlotTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest one spool call (taking or renewing the lease, recording the result) may take before it is retried.</summary>
    public TimeSpan StoreTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// An attempt stops before MAIL FROM or the end of data once its lease is confirmed for less than this (renewals
    /// failed): time for clock skew between hosts and for recording the result before the scheduler may re-issue it.
    /// </summary>
    public TimeSpan LeaseMargin { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long an attempt keeps retrying (with back-off) to record its result in the spool while the spool is
    /// unreachable. Retrying is always safe: the record is conditional on the lease, and Queue stops the lease clock
    /// while no scheduler reaches the spool, so after a database restart the lease is still this attempt's. Past this
    /// (or on shutdown) the result is published on the bus for Queue to record, and the consumer slot is freed. Keep it
    /// under RabbitMQ's consumer_timeout (30 minutes by default).
    /// </summary>
    public TimeSpan ResultRetryTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Where an attempt keeps its local copy of a message larger than the spool sends inline (256 KiB): streamed from the
    /// spool into an unlinked file here and sent from a memory map of it, so a large message never sits whole on the
    /// heap. Needs room for the large messages being delivered at once.
    /// </summary>
    public string ContentDirectory { get; set; } = Path.Combine(Path.GetTempPath(), "mailmesh-delivery");

    /// <summary>
    /// Octets of large-message copies in <see cref="ContentDirectory"/> at once, across all attempts of this process; an
    /// attempt waits up to <see cref="ConnectionSlotTimeout"/> for room, then defers (451 4.3.1). Below the chart's
    /// size-capped /tmp (256Mi), which the kubelet enforces by evicting the pod.
    /// </summary>
    public long MaxContentBytes { get; set; } = 192L * 1024 * 1024;

    /// <summary>STARTTLS (RFC 3207) policy: section "Delivery:Tls".</summary>
    public DeliveryTlsOptions Tls { get; set; } = new();

    /// <summary>
    /// Source-IP pools by name (Delivery:Pools:&lt;name&gt;:Addresses:N:Address/EhloName/Weight/WarmUp), docs/delivery.md
    /// "IP pools". None configured: connections leave from the address the OS picks and say <see cref="HeloName"/>.
    /// </summary>
    public Dictionary<string, Pools.SourcePoolOptions> Pools { get; set; } = [];

    /// <summary>The pool of mail no other setting places; null: the pool named "default" when there is one, else none.</summary>
    public string? DefaultPool { get; set; }

    /// <summary>
    /// Pool by envelope sender domain (Delivery:PoolBySenderDomain:&lt;domain&gt;=&lt;pool&gt;); an entry also covers the
    /// domain's subdomains. Used when the message did not name a pool at submission.
    /// </summary>
    public Dictionary<string, string> PoolBySenderDomain { get; set; } = [];

    public IEnumerable<string> Validate()
    {
        if (Port is < 1 or > 65535)
        {
            yield return "Delivery:Port: must be 1..65535";
        }

        if (string.IsNullOrWhiteSpace(HeloName) || HeloName.Any(c => c <= ' ' || c > '~'))
        {
            yield return "Delivery:HeloName: must be a host name (printable ASCII, no spaces)";
        }

        foreach (var (key, value) in new[]
        {
            ("ConnectTimeout", ConnectTimeout), ("GreetingTimeout", GreetingTimeout), ("CommandTimeout", CommandTimeout),
            ("MailTimeout", MailTimeout), ("RcptTimeout", RcptTimeout), ("DataInitiationTimeout", DataInitiationTimeout),
            ("DataBlockTimeout", DataBlockTimeout), ("DataTerminationTimeout", DataTerminationTimeout),
            ("QuitTimeout", QuitTimeout), ("IdleConnectionTimeout", IdleConnectionTimeout), ("ResolveTimeout", ResolveTimeout),
            ("ShutdownGracePeriod", ShutdownGracePeriod), ("ConnectionSlotTimeout", ConnectionSlotTimeout),
            ("StoreTimeout", StoreTimeout), ("LeaseMargin", LeaseMargin), ("ResultRetryTimeout", ResultRetryTimeout),
        })
        {
            if (value <= TimeSpan.Zero)
            {
                yield return $"Delivery:{key}: must be positive";
            }
        }

        if (WritableDirectory.Check(ContentDirectory) is { } contentDirectoryError)
        {
            yield return "Delivery:ContentDirectory: " + contentDirectoryError;
        }

        if (MaxContentBytes < 1024 * 1024)
        {
            yield return "Delivery:MaxContentBytes: must be at least 1048576 (1 MiB)";
        }

        if (MxCacheMaxTtl < TimeSpan.Zero)
        {
            yield return "Delivery:MxCacheMaxTtl: must not be negative";
        }

        if (MxCacheEntries < 0)
        {
            yield return "Delivery:MxCacheEntries: must not be negative";
        }

        if (MaxConnectionsPerDestination < 1)
        {
            yield return "Delivery:MaxConnectionsPerDestination: must be at least 1";
        }

        if (MaxMessagesPerConnection < 1)
        {
            yield return "Delivery:MaxMessagesPerConnection: must be at least 1";
        }

        if (ConcurrentDeliveries < 1)
        {
            yield return "Delivery:ConcurrentDeliveries: must be at least 1";
        }

        foreach (var error in Tls.Validate())
        {
            yield return error;
        }

        foreach (var error in MailMesh.Delivery.Pools.PoolValidation.Validate(this))
        {
            yield return error;
        }
    }
}
