using System.Diagnostics;

namespace MailMesh.Ingress;

/// <summary>The Ingress ActivitySource: one span per SMTP session, one per mail transaction.</summary>
internal static class IngressTelemetry
{
    public const string SourceName = "MailMesh.Ingress";

    public static ActivitySource Source { get; } = new(SourceName);
}
