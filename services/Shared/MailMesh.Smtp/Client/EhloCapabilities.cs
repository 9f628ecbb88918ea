using System.Collections.Frozen;
using System.Globalization;

namespace MailMesh.Smtp.Client;

/// <summary>
/// The service extensions a server announced in its EHLO reply (RFC 5321 §4.1.1.1): every line after the first is
/// "keyword [params]". Keywords are case-insensitive.
/// </summary>
public sealed class EhloCapabilities
{
    private readonly FrozenDictionary<string, string> _keywords;

    private EhloCapabilities(string? greeting, FrozenDictionary<string, string> keywords)
    {
        Greeting = greeting;
        _keywords = keywords;
        SizeLimit = ParseSize(keywords);
    }

    /// <summary>What a server that only understood HELO (RFC 5321 §3.2) offers: nothing.</summary>
    public static EhloCapabilities None { get; } = new(null, FrozenDictionary<string, string>.Empty);

    /// <summary>The first line of the EHLO reply: the server's name and greeting text.</summary>
    public string? Greeting { get; }

    /// <summary>Announced keywords (upper case) with their parameters ("" when none).</summary>
    public IReadOnlyDictionary<string, string> Keywords => _keywords;

    /// <summary>RFC 2920 command pipelining.</summary>
    public bool Pipelining => Has("PIPELINING");

    /// <summary>RFC 6152 8-bit MIME transport (BODY=8BITMIME).</summary>
    public bool EightBitMime => Has("8BITMIME");

    /// <summary>RFC 3030 BDAT.</summary>
    public bool Chunking => Has("CHUNKING");

    /// <summary>RFC 3030 BODY=BINARYMIME (requires CHUNKING).</summary>
    public bool BinaryMime => Has("BINARYMIME");

    /// <summary>RFC 2034 enhanced status codes in replies.</summary>
    public bool EnhancedStatusCodes => Has("ENHANCEDSTATUSCODES");

    /// <summary>RFC 3207 STARTTLS.</summary>
    public bool StartTls => Has("STARTTLS");

    /// <summary>RFC 6531 internationalised email.</summary>
    public bool SmtpUtf8 => Has("SMTPUTF8");

    /// <summary>RFC 3461 delivery status notifications (NOTIFY, RET, ENVID, ORCPT).</summary>
    public bool Dsn => Has("DSN");

    /// <summary>RFC 8689 REQUIRETLS (meaningful only in the EHLO reply after STARTTLS).</summary>
    public bool RequireTls => Has("REQUIRETLS");

    /// <summary>RFC 1870 SIZE was announced.</summary>
    public bool Size => Has("SIZE");

    /// <summary>
    /// RFC 1870 §4: the fixed maximum message size the server accepts, or null when SIZE is absent, has no value, or
    /// is 0 ("no fixed maximum").
    /// </summary>
    public long? SizeLimit { get; }

    public bool Has(string keyword) => _keywords.ContainsKey(keyword);

    /// <summary>Reads the capabilities out of a successful EHLO reply.</summary>
    public static EhloCapabilities Parse(ServerReply reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        var keywords = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 1; i < reply.Lines.Count; i++)
        {
            var line = reply.Lines[i].Trim();
            if (line.Length == 0)
            {
                continue;
            }

            var space = line.IndexOf(' ', StringComparison.Ordinal);
            var keyword = (space < 0 ? line : line[..space]).ToUpperInvariant();
            var parameters = space < 0 ? string.Empty : line[(space + 1)..].Trim();

            // RFC 5321 §4.1.1.1: ehlo-keyword is (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"); ignore anything else.
            if (!char.IsAsciiLetterOrDigit(keyword[0]) || !keyword.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            {
                continue;
            }

            keywords.TryAdd(keyword, parameters);
        }

        return new EhloCapabilities(reply.Lines.Count > 0 ? reply.Lines[0] : null, keywords.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase));
    }

    private static long? ParseSize(FrozenDictionary<string, string> keywords) =>
        keywords.TryGetValue("SIZE", out var value)
        && long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var size)
        && size > 0
            ? size
            : null;
}
