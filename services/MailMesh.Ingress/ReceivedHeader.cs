using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MailMesh.Ingress;

/// <summary>The trace header Ingress prepends to every accepted message (RFC 5321 §4.4).</summary>
internal static class ReceivedHeader
{
    /// <summary>
    /// Writes "Received: from helo ([ip]) by host (MailMesh) with ESMTP id id for &lt;rcpt&gt;; date" folded over three
    /// lines. TCP-info is the address literal of the peer (RFC 5321 §4.4: TCP-info = address-literal); no reverse DNS
    /// lookup is made on the accept path.
    /// </summary>
    public static void Write(
        IBufferWriter<byte> output,
        string? helo,
        IPAddress? client,
        string hostName,
        string protocol,
        Guid messageId,
        string? singleRecipient,
        DateTimeOffset receivedAt)
    {
        var builder = new StringBuilder(256);
        builder.Append("Received: from ").Append(string.IsNullOrEmpty(helo) ? "unknown" : helo);
        if (client is not null)
        {
            builder.Append(" (").Append(AddressLiteral(client)).Append(')');
        }

        builder.Append("\r\n\tby ").Append(hostName).Append(" (MailMesh) with ").Append(protocol)
            .Append(" id ").Append(messageId.ToString("D"));
        if (singleRecipient is not null)
        {
            // RFC 5321 §7.2: "for" only when there is exactly one recipient, so the header does not disclose the others.
            builder.Append("\r\n\tfor <").Append(singleRecipient).Append('>');
        }

        builder.Append("; ").Append(FormatDate(receivedAt)).Append("\r\n");
        var text = builder.ToString();
        // HELO names are ASCII (the command parser checks); a recipient may be UTF-8 under SMTPUTF8 (RFC 6532 §3.2
        // allows UTF-8 in header fields of such messages).
        var span = output.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        var written = Encoding.UTF8.GetBytes(text, span);
        output.Advance(written);
    }

    /// <summary>RFC 5321 §4.1.3 address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]".</summary>
    public static string AddressLiteral(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 ? "[IPv6:" + address + "]" : "[" + address + "]";

    /// <summary>RFC 5322 §3.3 date-time, in UTC with a numeric zone.</summary>
    public static string FormatDate(DateTimeOffset time) =>
        time.ToUniversalTime().ToString("ddd, d MMM yyyy HH:mm:ss", CultureInfo.InvariantCulture) + " +0000";
}
