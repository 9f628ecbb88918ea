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
/// A placeholder is <c>@</c> followed by a letter or <c>_</c>, outside quoted text (<c>'...'</c>, <c>"..."</c>) and
/// comments (<c>--</c>, <c>/* */</c>); <c>@&gt;</c> and <c>@@</c> stay operators. Names are case-insensitive, as Npgsql's,
/// and a name used twice is one position. Text this scanner does not read is refused when the statement is made:
/// dollar quoting and <c>$n</c> (a <c>$</c> anywhere outside quotes and comments) and backslash escapes (<c>E'...'</c>).
/// </remarks>
internal sealed class PositionalStatement
{
    private readonly Dictionary<string, int> _positions = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<string> _names = [];

    public PositionalStatement(string namedSql)
    {
        ArgumentNullException.ThrowIfNull(namedSql);
        var sql = new StringBuilder(namedSql.Length);
        var i = 0;
        while (i < namedSql.Length)
        {
            var c = namedSql[i];
            if (c == '\'' && i > 0 && namedSql[i - 1] is 'E' or 'e' && (i < 2 || !IsIdentifier(namedSql[i - 2])))
            {
                throw new ArgumentException("backslash-escaped text (E'...') is not read by PositionalStatement", nameof(namedSql));
            }

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
            else if (c == '/' && i + 1 < namedSql.Length && namedSql[i + 1] == '*')
            {
                var end = namedSql.IndexOf("*/", i + 2, StringComparison.Ordinal);
                end = end < 0 ? namedSql.Length : end + 2;
                sql.Append(namedSql, i, end - i);
                i = end;
            }
            else if (c == '$')
            {
                throw new ArgumentException("'$' (dollar quoting or a positional placeholder) is not read by PositionalStatement", nameof(namedSql));
            }
            else if (c == '@' && i + 1 < namedSql.Length && namedSql[i + 1] == '@')
            {
                sql.Append("@@");
                i += 2;
            }
            else if (c == '@' && i + 1 < namedSql.Length && (char.IsAsciiLetter(namedSql[i + 1]) || namedSql[i + 1] == '_'))
            {
                var start = i + 1;
                var end = start;
                while (end < namedSql.Length && IsIdentifier(namedSql[end]))
                {
                    end++;
                }

                var name = namedSql[start..end];
                if (!_positions.TryGetValue(name, out var position))
                {
                    _names.Add(name);
                    _positions[name] = position = _names.Count;
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

    private static bool IsIdentifier(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    /// <summary>The statement with <c>$1</c>, <c>$2</c>, ... in the order the names first appear.</summary>
    public string Sql { get; }

    /// <summary>The placeholders' names, in position order.</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>
    /// A batch command of the statement with <paramref name="parameters"/> (named as in the statement, with or without
    /// a leading <c>@</c>, in any order) put in their positions. The parameters are the command's from then on: their
    /// names are cleared, so they are not to be used again. Every placeholder needs exactly one; a name the statement
    /// lacks, a name given twice or one left out throws, before any name is cleared.
    /// </summary>
    public NpgsqlBatchCommand Command(params ReadOnlySpan<NpgsqlParameter> parameters)
    {
        var ordered = new NpgsqlParameter?[_names.Count];
        foreach (var parameter in parameters)
        {
            var name = parameter.ParameterName.TrimStart('@');
            if (!_positions.TryGetValue(name, out var position))
            {
                throw new ArgumentException($"the statement has no @{name}", nameof(parameters));
            }

            if (ordered[position - 1] is not null)
            {
                throw new ArgumentException($"@{name} is given twice", nameof(parameters));
            }

            ordered[position - 1] = parameter;
        }

        var missing = Array.IndexOf(ordered, null);
        if (missing >= 0)
        {
            throw new ArgumentException($"no value for @{Names[missing]}", nameof(parameters));
        }

        var command = new NpgsqlBatchCommand(Sql);
        foreach (var parameter in ordered)
        {
            parameter!.ParameterName = string.Empty;
            command.Parameters.Add(parameter);
        }

        return command;
    }
}
