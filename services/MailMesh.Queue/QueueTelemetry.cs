using System.Diagnostics;
using MailMesh.ServiceDefaults;

namespace MailMesh.Queue;

/// <summary>The Queue service's ActivitySource. Spans about a stored message link to the trace that accepted it.</summary>
internal static class QueueTelemetry
{
    public static readonly ActivitySource Source = new(Telemetry.Prefix + ".Queue");

    /// <summary>Starts a span linked to (not parented by) the message's stored trace: retries days later stay findable.</summary>
    public static Activity? StartLinked(string name, ActivityKind kind, string? traceParent, Guid messageId)
    {
        var links = Telemetry.ParseTraceParent(traceParent) is { } context ? new[] { new ActivityLink(context) } : null;
        var activity = Source.StartActivity(name, kind, parentContext: default, links: links);
        activity?.SetTag("mailmesh.message.id", messageId);
        return activity;
    }
}
