using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace MailMesh.Ingress.FunctionalTests;

/// <summary>Accepts the self-signed certificate the test host makes (Ingress:Tls:SelfSigned) and nothing else.</summary>
internal static class TestCertificates
{
    public static bool IsTestServer(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) =>
        (errors & ~(SslPolicyErrors.RemoteCertificateChainErrors | SslPolicyErrors.RemoteCertificateNameMismatch)) == SslPolicyErrors.None
        && certificate?.Subject == "CN=" + IngressHost.HostName;
}
