using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace MailMesh.Testing.Postfix;

/// <summary>How a <see cref="PostfixInstance"/> is set up before it starts.</summary>
public sealed class PostfixInstanceOptions
{
    /// <summary>myhostname: the name in the greeting, EHLO and the Received header Postfix adds.</summary>
    public string HostName { get; set; } = "postfix.test";

    /// <summary>The loopback address smtpd listens on.</summary>
    public IPAddress Address { get; set; } = IPAddress.Loopback;

    /// <summary>The smtpd port; 0 picks a free one.</summary>
    public int Port { get; set; }

    /// <summary>
    /// The certificate (with its private key) smtpd offers with STARTTLS (RFC 3207). Null: smtpd offers no TLS.
    /// </summary>
    public X509Certificate2? Certificate { get; set; }

    /// <summary>
    /// Extra main.cf parameters, applied last (they win over the fixture's defaults). Values may use Postfix's own
    /// expansion, e.g. <c>hash:$config_directory/recipient_access</c> for a map in <see cref="Maps"/>.
    /// </summary>
    public Dictionary<string, string> Settings { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Lookup tables written into the config directory under the key's file name and compiled with
    /// <c>postmap hash:</c>; refer to them as <c>hash:$config_directory/NAME</c>.
    /// </summary>
    public Dictionary<string, string> Maps { get; } = new(StringComparer.Ordinal);
}
