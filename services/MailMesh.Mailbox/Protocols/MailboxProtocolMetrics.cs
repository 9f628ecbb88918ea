using System.Diagnostics.Metrics;
using MailMesh.Mailbox.Deliveries;

namespace MailMesh.Mailbox.Protocols;

/// <summary>The POP3 and IMAP servers' instruments, on the Mailbox service's meter ("MailMesh.Mailbox").</summary>
internal sealed class MailboxProtocolMetrics
{
    private readonly UpDownCounter<long> _sessions;
    private readonly Counter<long> _logins;

    public MailboxProtocolMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(LocalDeliveryMetrics.MeterName);
        _sessions = meter.CreateUpDownCounter<long>(
            "mailmesh.mailbox.sessions.active", "{session}", "POP3 and IMAP sessions open now, by network.protocol.name.");
        _logins = meter.CreateCounter<long>(
            "mailmesh.mailbox.logins", "{login}", "POP3 and IMAP login attempts, by network.protocol.name and mailmesh.login.outcome.");
    }

    public void SessionStarted(string protocol) => _sessions.Add(1, new KeyValuePair<string, object?>("network.protocol.name", protocol));

    public void SessionEnded(string protocol) => _sessions.Add(-1, new KeyValuePair<string, object?>("network.protocol.name", protocol));

    public void Login(string protocol, string outcome) =>
        _logins.Add(1, new KeyValuePair<string, object?>("network.protocol.name", protocol), new KeyValuePair<string, object?>("mailmesh.login.outcome", outcome));
}
