namespace MailMesh.Mailbox.Imap;

/// <summary>
/// A sequence-set (RFC 9051 §9): ranges of message sequence numbers or UIDs, "*" meaning the largest in use. Ranges are
/// kept as written (n:m and m:n are the same range); <see cref="Star"/> stands for "*" until resolved against a mailbox.
/// </summary>
internal sealed class SequenceSet
{
    /// <summary>The value of "*" before it is resolved.</summary>
    public const uint Star = uint.MaxValue;

    public SequenceSet(IReadOnlyList<(uint First, uint Last)> ranges)
    {
        Ranges = ranges;
    }

    public IReadOnlyList<(uint First, uint Last)> Ranges { get; }

    /// <summary>True when <paramref name="value"/> is in the set, "*" taken as <paramref name="largest"/>.</summary>
    public bool Contains(uint value, uint largest)
    {
        foreach (var (first, last) in Ranges)
        {
            var a = first == Star ? largest : first;
            var b = last == Star ? largest : last;
            if (value >= Math.Min(a, b) && value <= Math.Max(a, b))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Parses "1:4,7,9:*" (no spaces); false on anything else or a zero.</summary>
    public static bool TryParse(ReadOnlySpan<byte> text, out SequenceSet set)
    {
        set = null!;
        var ranges = new List<(uint, uint)>();
        foreach (var range in text.Split((byte)','))
        {
            var part = text[range];
            var colon = part.IndexOf((byte)':');
            if (colon < 0)
            {
                if (!TryNumber(part, out var single))
                {
                    return false;
                }

                ranges.Add((single, single));
            }
            else if (!TryNumber(part[..colon], out var first) || !TryNumber(part[(colon + 1)..], out var last))
            {
                return false;
            }
            else
            {
                ranges.Add((first, last));
            }
        }

        if (ranges.Count == 0)
        {
            return false;
        }

        set = new SequenceSet(ranges);
        return true;
    }

    // seq-number = nz-number / "*"; nz-number = digit-nz *DIGIT, at most 2^32-1 (RFC 9051 §9).
    private static bool TryNumber(ReadOnlySpan<byte> text, out uint value)
    {
        value = 0;
        if (text is [(byte)'*'])
        {
            value = Star;
            return true;
        }

        if (text.IsEmpty || text.Length > 10 || text[0] == '0')
        {
            return false;
        }

        ulong n = 0;
        foreach (var b in text)
        {
            if (b is < (byte)'0' or > (byte)'9')
            {
                return false;
            }

            n = (n * 10) + (ulong)(b - '0');
        }

        if (n >= uint.MaxValue)
        {
            return false;
        }

        value = (uint)n;
        return true;
    }

    public override string ToString() =>
        string.Join(",", Ranges.Select(r => r.First == r.Last ? Text(r.First) : Text(r.First) + ":" + Text(r.Last)));

    private static string Text(uint n) => n == Star ? "*" : n.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
