using System.Text;

namespace MailMesh.Policy.Content;

/// <summary>The Authentication-Results header field (RFC 8601) MailMesh stamps, and recognising earlier ones that claim
/// its authserv-id (§5: those must be removed, or a sender could forge this server's verdict).</summary>
public static class AuthenticationResultsHeader
{
    public const string FieldName = "Authentication-Results";

    /// <summary>
    /// One field, ending in CRLF: "Authentication-Results: id;" then each method result on its own folded line, or
    /// "none" when there is none (RFC 8601 §2.2). Control characters in a result are replaced by spaces.
    /// </summary>
    public static string Format(string authServId, IEnumerable<string> results)
    {
        var builder = new StringBuilder(256).Append(FieldName).Append(": ").Append(authServId);
        var any = false;
        foreach (var result in results)
        {
            if (string.IsNullOrWhiteSpace(result))
            {
                continue;
            }

            builder.Append(";\r\n\t");
            foreach (var c in result.Trim())
            {
                builder.Append(char.IsControl(c) ? ' ' : c);
            }

            any = true;
        }

        if (!any)
        {
            builder.Append("; none");
        }

        return builder.Append("\r\n").ToString();
    }

    /// <summary>
    /// The authserv-id of an Authentication-Results field value (unfolded or not): the first token after any comments
    /// and white space, up to white space, '(' or ';'. Null when there is none.
    /// </summary>
    public static string? AuthServIdOf(ReadOnlySpan<char> value)
    {
        var i = 0;
        var depth = 0;
        while (i < value.Length)
        {
            var c = value[i];
            if (depth > 0)
            {
                depth += c == '(' ? 1 : c == ')' ? -1 : 0;
                i += c == '\\' ? 2 : 1;
                continue;
            }

            if (c == '(')
            {
                depth = 1;
                i++;
                continue;
            }

            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }

            break;
        }

        var start = i;
        while (i < value.Length && !char.IsWhiteSpace(value[i]) && value[i] is not ';' and not '(')
        {
            i++;
        }

        if (i == start)
        {
            return null;
        }

        var id = value[start..i];

        // RFC 8601 §2.2: the authserv-id may be a quoted string.
        return id.Length >= 2 && id[0] == '"' && id[^1] == '"' ? id[1..^1].ToString() : id.ToString();
    }

    /// <summary>True when the field value names <paramref name="authServId"/> as its authserv-id (case-insensitive).</summary>
    public static bool IsFrom(ReadOnlySpan<char> value, string authServId) =>
        string.Equals(AuthServIdOf(value), authServId, StringComparison.OrdinalIgnoreCase);
}
