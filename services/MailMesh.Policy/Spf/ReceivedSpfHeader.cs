using System.Net;
using System.Text;

namespace MailMesh.Policy.Spf;

/// <summary>The Received-SPF trace header field (RFC 7208 §9.1), ending in CRLF, ready to prepend.</summary>
internal static class ReceivedSpfHeader
{
    /// <summary>RFC 7208 §9.1: result, comment, then key=value pairs (client-ip, envelope-from, helo, receiver,
    /// identity), folded so no line is long. Values that are not dot-atoms are quoted (RFC 5322 §3.2.4).</summary>
    public static string Format(SpfEvaluation evaluation, IPAddress client, string sender, string? helo, string receiver)
    {
        var result = Keyword(evaluation.Result);
        var builder = new StringBuilder(256);
        builder.Append("Received-SPF: ").Append(result).Append(" (").Append(Comment(receiver)).Append(": ");
        builder.Append(evaluation.Result switch
        {
            SpfResult.Pass => $"domain of {Comment(evaluation.Identity)} designates {client} as permitted sender",
            SpfResult.Fail => $"domain of {Comment(evaluation.Identity)} does not designate {client} as permitted sender",
            SpfResult.SoftFail => $"domain of transitioning {Comment(evaluation.Identity)} does not designate {client} as permitted sender",
            SpfResult.Neutral => $"{client} is neither permitted nor denied by domain of {Comment(evaluation.Identity)}",
            SpfResult.None => $"domain of {Comment(evaluation.Identity)} does not publish SPF",
            _ => $"{Comment(evaluation.Problem ?? "error")} checking {Comment(evaluation.Domain)}",
        });
        builder.Append(")\r\n\tclient-ip=").Append(client).Append(';');
        builder.Append(" envelope-from=").Append(Value(sender)).Append(';');
        if (!string.IsNullOrEmpty(helo))
        {
            builder.Append(" helo=").Append(Value(helo)).Append(';');
        }

        builder.Append("\r\n\treceiver=").Append(Value(receiver)).Append(';');
        builder.Append(" identity=").Append(sender.Length == 0 ? "helo" : "mailfrom").Append("\r\n");
        return builder.ToString();
    }

    public static string Keyword(SpfResult result) => result switch
    {
        SpfResult.Pass => "pass",
        SpfResult.Fail => "fail",
        SpfResult.SoftFail => "softfail",
        SpfResult.Neutral => "neutral",
        SpfResult.TempError => "temperror",
        SpfResult.PermError => "permerror",
        _ => "none",
    };

    /// <summary>Text safe inside a comment: no parentheses, backslashes or control characters.</summary>
    private static string Comment(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            builder.Append(c is '(' or ')' or '\\' || char.IsControl(c) ? '_' : c);
        }

        return builder.ToString();
    }

    /// <summary>A dot-atom as is, anything else as a quoted string with '"' and '\' escaped and controls dropped.</summary>
    private static string Value(string text)
    {
        if (text.Length > 0 && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or '+' or '=' or '/'))
        {
            return text;
        }

        return Quote(text);
    }

    /// <summary>A quoted string with '"' and '\' escaped and controls dropped (RFC 5322 §3.2.4).</summary>
    internal static string Quote(string text)
    {
        var builder = new StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
        {
            if (char.IsControl(c))
            {
                continue;
            }

            if (c is '"' or '\\')
            {
                builder.Append('\\');
            }

            builder.Append(c);
        }

        return builder.Append('"').ToString();
    }
}
