using System.Diagnostics;

namespace MailMesh.ServiceDefaults;

/// <summary>Names shared by every service's telemetry, so one trace and one metric namespace span the mesh.</summary>
public static class Telemetry
{
    /// <summary>Prefix of every MailMesh ActivitySource and Meter ("MailMesh.Ingress", "MailMesh.Queue", ...).</summary>
    public const string Prefix = "MailMesh";

    /// <summary>The W3C traceparent of the current activity, for storing with a message.</summary>
    public static string? CurrentTraceParent() => Activity.Current?.Id;

    /// <summary>Parses a stored traceparent back into a context a new span can link to or continue.</summary>
    public static ActivityContext? ParseTraceParent(string? traceParent) =>
        traceParent is not null && ActivityContext.TryParse(traceParent, null, out var context) ? context : null;
}
