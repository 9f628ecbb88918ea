using System.Globalization;

namespace MailMesh.Policy.Dmarc;

/// <summary>
/// The Public Suffix List (https://publicsuffix.org/list/, the file of Debian's <c>publicsuffix</c> package) and the
/// organizational domain of RFC 7489 §3.2: the public suffix of a domain plus one label. Rules are normal ("com"),
/// wildcard ("*.ck") or exception ("!www.ck"); the longest matching rule wins, an exception over a wildcard, and a domain
/// no rule matches has the implicit rule "*" (its last label is the suffix). Rules are kept as A-labels, as domains in
/// mail are.
/// </summary>
internal sealed class PublicSuffixList
{
    private readonly HashSet<string> _rules = new(StringComparer.Ordinal);
    private readonly HashSet<string> _wildcards = new(StringComparer.Ordinal);
    private readonly HashSet<string> _exceptions = new(StringComparer.Ordinal);

    private PublicSuffixList()
    {
    }

    /// <summary>Rules read.</summary>
    public int Count => _rules.Count + _wildcards.Count + _exceptions.Count;

    public static PublicSuffixList Load(string path) => Parse(File.ReadLines(path));

    public static PublicSuffixList Parse(IEnumerable<string> lines)
    {
        var list = new PublicSuffixList();
        var idn = new IdnMapping();
        foreach (var raw in lines)
        {
            // A rule is the first white-space-separated word of a line; "//" starts a comment line.
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith("//", StringComparison.Ordinal))
            {
                continue;
            }

            var end = line.IndexOfAny([' ', '\t']);
            var rule = (end < 0 ? line : line[..end]).ToLowerInvariant();
            var set = rule.StartsWith('!') ? list._exceptions : rule.StartsWith("*.", StringComparison.Ordinal) ? list._wildcards : list._rules;
            rule = rule.TrimStart('!');
            if (rule.StartsWith("*.", StringComparison.Ordinal))
            {
                rule = rule[2..];
            }

            try
            {
                set.Add(idn.GetAscii(rule));
            }
            catch (ArgumentException)
            {
                // Not a usable name: skipped.
            }
        }

        return list;
    }

    /// <summary>The organizational domain of <paramref name="domain"/> (lower case, A-labels, no trailing dot).</summary>
    public string OrganizationalDomain(string domain)
    {
        var labels = domain.TrimEnd('.').ToLowerInvariant().Split('.');
        var suffixLabels = 1;
        for (var i = 0; i < labels.Length; i++)
        {
            var candidate = string.Join('.', labels[i..]);
            if (_exceptions.Contains(candidate))
            {
                suffixLabels = labels.Length - i - 1;
                break;
            }

            if (_rules.Contains(candidate) || (i + 1 < labels.Length && _wildcards.Contains(string.Join('.', labels[(i + 1)..]))))
            {
                suffixLabels = labels.Length - i;
                break;
            }
        }

        return labels.Length > suffixLabels ? string.Join('.', labels[^(suffixLabels + 1)..]) : string.Join('.', labels);
    }
}
