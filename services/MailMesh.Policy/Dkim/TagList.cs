namespace MailMesh.Policy.Dkim;

/// <summary>A tag=value list (RFC 6376 §3.2: DKIM-Signature, DKIM key records; RFC 7489 §6.4: DMARC records). Tag
/// names are case-sensitive; white space around tags, values and '=' is ignored, and folding is white space.</summary>
internal static class TagList
{
    /// <summary>The tags in order; null when a tag has no '=' or appears twice (a syntax error).</summary>
    public static IReadOnlyList<KeyValuePair<string, string>>? Parse(string text)
    {
        var tags = new List<KeyValuePair<string, string>>();
        foreach (var part in text.Split(';'))
        {
            if (string.IsNullOrWhiteSpace(part))
            {
                continue;
            }

            var equals = part.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                return null;
            }

            var name = part[..equals].Trim();
            if (name.Length == 0 || tags.Exists(t => t.Key == name))
            {
                return null;
            }

            tags.Add(new(name, Unfold(part[(equals + 1)..])));
        }

        return tags;
    }

    public static string? Get(this IReadOnlyList<KeyValuePair<string, string>> tags, string name) =>
        tags.FirstOrDefault(t => t.Key == name).Value;

    private static string Unfold(string value) =>
        value.Replace("\r", string.Empty, StringComparison.Ordinal).Replace("\n", string.Empty, StringComparison.Ordinal).Trim();
}
