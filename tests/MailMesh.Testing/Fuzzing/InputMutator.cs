namespace MailMesh.Testing.Fuzzing;

/// <summary>
/// Seeded (deterministic) byte-level mutations for the protocol parsers' fuzz tests (the SMTP parsers, IMAP framing and
/// parsing, MIME structure): each input gets one to <see cref="MaxMutations"/> of: an octet replaced, an interesting
/// octet inserted, an octet removed, a run of one printable octet inserted, a protocol fragment spliced in, the tail
/// cut off. The same seed gives the same inputs, so a failure is reproducible.
/// </summary>
public sealed class InputMutator
{
    private readonly Random _random;
    private readonly byte[] _interesting;

    /// <param name="random">The seeded source of every choice.</param>
    /// <param name="interesting">Octets that matter to the parser (delimiters, CR, LF, 8-bit lead bytes).</param>
    public InputMutator(Random random, byte[] interesting)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentNullException.ThrowIfNull(interesting);
        _random = random;
        _interesting = interesting;
    }

    /// <summary>Most mutations per input.</summary>
    public int MaxMutations { get; init; } = 7;

    /// <summary>Longest run of one printable octet inserted (exclusive).</summary>
    public int MaxRun { get; init; } = 700;

    /// <summary>Protocol fragments to splice in (a command of the corpus, a literal announcement); null: none.</summary>
    public Func<Random, byte[]>? Fragment { get; init; }

    /// <summary>Whether cutting off the tail from a random point is one of the mutations.</summary>
    public bool Truncates { get; init; }

    public byte[] Mutate(byte[] input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var bytes = new List<byte>(input);
        for (var m = _random.Next(1, MaxMutations + 1); m > 0; m--)
        {
            var position = bytes.Count == 0 ? 0 : _random.Next(bytes.Count);
            switch (_random.Next(6))
            {
                case 0 when bytes.Count > 0:
                    bytes[position] = (byte)_random.Next(256);
                    break;
                case 1:
                    bytes.Insert(position, _interesting[_random.Next(_interesting.Length)]);
                    break;
                case 2 when bytes.Count > 0:
                    bytes.RemoveAt(position);
                    break;
                case 3:
                    bytes.InsertRange(position, Enumerable.Repeat((byte)_random.Next(32, 127), _random.Next(1, MaxRun)));
                    break;
                case 4 when Fragment is not null:
                    bytes.InsertRange(position, Fragment(_random));
                    break;
                case 5 when Truncates && bytes.Count > 1:
                    bytes.RemoveRange(position, _random.Next(bytes.Count - position));
                    break;
            }
        }

        return [.. bytes];
    }
}
