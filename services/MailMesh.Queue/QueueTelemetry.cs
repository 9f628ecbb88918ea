using System.Diagnostics;
using MailMesh.ServiceDefaults;

namespace MailMesh.Queue;

/// <summary>The Queue service's ActivitySource. Spans about a stored message continue the trace that accepted it.</summary>
internal static class QueueTelemetry
{
    public static readonly ActivitySource Source = new(Telemetry.Prefix + ".Queue");

    /// <summary>
    /// Starts a span in the message's own trace: its parent is the trace context stored with the message when Ingress
    /// accepted it, whatever span (if any) is current. The scheduler claims work in a background loop with no ambient
    /// span, so without this every dispatch — and everything downstream of it: Delivery, Dns, the result applied by
    /// Queue — would start a new trace. Every attempt, the first and each retry, is parented this way, so one message
    /// is one trace from its SMTP session to its last attempt (docs/telemetry.md, "Trace shape"). A message stored
    /// without a context gets a span of its own (a root, in the scheduler's loop).
    /// </summary>
    public static Activity? StartInMessageTrace(string name, ActivityKind kind, string? traceParent, Guid messageId)
    {
        var activity = Telemetry.ParseTraceParent(traceParent) is { } stored
            ? Source.StartActivity(name, kind, stored)
            : Source.StartActivity(name, kind);
        activity?.SetTag("mailmesh.message.id", messageId);
        return activity;
    }
}
