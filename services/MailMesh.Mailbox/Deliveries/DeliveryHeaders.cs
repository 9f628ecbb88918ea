using System.Globalization;
using System.Text;

namespace MailMesh.Mailbox.Deliveries;

/// <summary>
/// The header lines final delivery writes before a message for one recipient (RFC 5321 §4.4): <c>Return-Path</c> with
/// the reverse path ("the final delivery SMTP server ... inserts a return-path line at the beginning of the mail data";
/// empty angle brackets for the null sender), <c>Delivered-To</c> with the envelope recipient (as Postfix and Dovecot
/// write it, so a loop through aliases can be seen), and a <c>Received</c> time stamp line for this hop.
/// </summary>
internal static class DeliveryHeaders
{
    public static byte[] Prefix(string sender, string recipient, string hostName, Guid messageId, DateTimeOffset deliveredAt)
    {
        // RFC 5322 §3.3 date-time, e.g. "Wed, 02 Dec 2026 04:00:00 +0000".
        var date = deliveredAt.ToUniversalTime().ToString("ddd, dd MMM yyyy HH:mm:ss '+0000'", CultureInfo.InvariantCulture);
        var text = new StringBuilder(256)
            .Append("Return-Path: <").Append(Clean(sender)).Append(">\r\n")
            .Append("Delivered-To: ").Append(Clean(recipient)).Append("\r\n")
            .Append("Received: by ").Append(hostName).Append(" (MailMesh) with local id ").Append(messageId.ToString("N"))
            .Append("\r\n\tfor <").Append(Clean(recipient)).Append(">; ").Append(date).Append("\r\n")
            .ToString();

        // Addresses are UTF-8 under SMTPUTF8 (RFC 6532 §3.2: UTF-8 in header fields).
        return Encoding.UTF8.GetBytes(text);
    }

    /// <summary>An envelope address cannot contain CR or LF (the SMTP parser refuses them); this keeps a header line
    /// one line whatever reached the spool.</summary>
    private static string Clean(string address) =>
        address.Contains('\r') || address.Contains('\n') ? address.Replace("\r", string.Empty, StringComparison.Ordinal).Replace("\n", string.Empty, StringComparison.Ordinal) : address;
}
