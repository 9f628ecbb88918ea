using System.Text;
using Npgsql;

namespace MailMesh.Storage.Postgres;

/// <summary>
/// A statement written with named placeholders (<c>@id</c>), for the reader, and sent with positional ones (<c>$1</c>),
/// converted once. Npgsql sends a statement whose parameters have no names as it is; one with named parameters it parses
/// and rewrites on every execution (the rewritten text, a name lookup and a parameter list each time: a tenth of
/// Ingress's sampled allocations came from rewriting the store, issue 8).
/// </summary>
/// <remarks>
/// A placeholder is <c>@</c> followed by a letter or <c>_</c>, outside quoted text and comments (so <c>@&gt;</c> stays an
/// operator). A name used twice is one position.
/// </remarks>
internal sealed class PositionalStatement
{
    private readonly Dictionary<string, int> _positions = new(StringComparer.Ordinal);

    public PositionalStatement(string namedSql)
    {
        ArgumentNullException.ThrowIfNull(namedSql);
        var sql = new StringBuilder(namedSql.Length);
        var i = 0;
        while (i < namedSql.Length)
        {
            var c = namedSql[i];
            if (c is '\'' or '"')
            {
                // Quoted text or a quoted identifier, copied as it is ('' and "" are the quote itself).
                var end = namedSql.IndexOf(c, i + 1);
                while (end >= 0 && end + 1 < namedSql.Length && namedSql[end + 1] == c)
                {
                    end = namedSql.IndexOf(c, end + 2);
                }

                end = end < 0 ? namedSql.Length - 1 : end;
                sql.Append(namedSql, i, end - i + 1);
                i = end + 1;
            }
            else if (c == '-' && i + 1 < namedSql.Length && namedSql[i + 1] == '-')
            {
                var end = namedSql.IndexOf('\n', i);
                end = end < 0 ? namedSql.Length : end;
                sql.Append(namedSql, i, end - i);
                i = end;
            }
            else if (c == '@' && i + 1 < namedSql.Length && (char.IsAsciiLetter(namedSql[i + 1]) || namedSql[i + 1] == '_'))
            {
                var start = i + 1;
                var end = start;
                while (end < namedSql.Length && (char.IsAsciiLetterOrDigit(namedSql[end]) || namedSql[end] == '_'))
                {
                    end++;
                }

                var name = namedSql[start..end];
                if (!_positions.TryGetValue(name, out var position))
                {
                    _positions[name] = position = _positions.Count + 1;
                }

                sql.Append('$').Append(position);
                i = end;
            }
            else
            {
                sql.Append(c);
                i++;
            }
        }

        Sql = sql.ToString();
    }

    /// <summary>The statement with <c>$1</c>, <c>$2</c>, ... in the order the names first appear.</summary>
    public string Sql { get; }

    /// <summary>The placeholders' names, in position order.</summary>
    public IReadOnlyList<string> Names => [.. _positions.OrderBy(p => p.Value).Select(p => p.Key)];

    /// <summary>
    /// A batch command of the statement with <paramref name="parameters"/> (named as in the statement, in any order) put
    /// in their positions and their names cleared. Every placeholder needs exactly one; a name the statement lacks, a
    /// name given twice or one left out throws.
    /// </summary>
    public NpgsqlBatchCommand Command(params ReadOnlySpan<NpgsqlParameter> parameters)
    {
        var ordered = new NpgsqlParameter?[_positions.Count];
        foreach (var parameter in parameters)
        {
            if (!_positions.TryGetValue(parameter.ParameterName, out var position))
            {
                throw new ArgumentException($"the statement has no @{parameter.ParameterName}", nameof(parameters));
            }

            if (ordered[position - 1] is not null)
            {
                throw new ArgumentException($"@{parameter.ParameterName} is given twice", nameof(parameters));
            }

            ordered[position - 1] = parameter;
        }

        var command = new NpgsqlBatchCommand(Sql);
        for (var i = 0; i < ordered.Length; i++)
        {
            var parameter = ordered[i] ?? throw new ArgumentException($"no value for @{Names[i]}", nameof(parameters));
            parameter.ParameterName = string.Empty;
            command.Parameters.Add(parameter);
        }

        return command;
    }
}
