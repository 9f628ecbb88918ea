using MailMesh.Storage.Postgres;
using Npgsql;

namespace MailMesh.Storage.IntegrationTests;

/// <summary>Named placeholders turned once into positional ones, so Npgsql sends the statement without rewriting it.</summary>
public sealed class PositionalStatementTests
{
    [Fact]
    public void Names_become_positions_in_the_order_they_first_appear_and_a_repeated_name_keeps_its_position()
    {
        var statement = new PositionalStatement("INSERT INTO t (a, b, c) VALUES (@first, @second_2, @first || @_third::text)");

        Assert.Equal("INSERT INTO t (a, b, c) VALUES ($1, $2, $1 || $3::text)", statement.Sql);
        Assert.Equal(["first", "second_2", "_third"], statement.Names);
    }

    [Fact]
    public void Quoted_text_comments_and_operators_are_left_alone()
    {
        var statement = new PositionalStatement("""
            SELECT '@not' || 'it''s @not', "@col" -- @not a parameter
            FROM t WHERE tags @> @tags AND x = @x
            """);

        Assert.Equal("""
            SELECT '@not' || 'it''s @not', "@col" -- @not a parameter
            FROM t WHERE tags @> $1 AND x = $2
            """, statement.Sql);
    }

    [Fact]
    public void A_command_puts_each_value_in_its_position_without_its_name()
    {
        var statement = new PositionalStatement("SELECT @b, @a");

        var command = statement.Command(new NpgsqlParameter<int>("a", 1), new NpgsqlParameter<int>("b", 2));

        Assert.Equal("SELECT $1, $2", command.CommandText);
        Assert.Equal([2, 1], command.Parameters.Select(p => (int)p.Value!));
        Assert.All(command.Parameters, p => Assert.Equal(string.Empty, p.ParameterName));
    }

    [Theory]
    [InlineData("c", "the statement has no @c")]
    [InlineData("a", "@a is given twice")]
    [InlineData(null, "no value for @b")]
    public void A_value_for_no_placeholder_a_value_given_twice_or_one_left_out_is_refused(string? extra, string expected)
    {
        var statement = new PositionalStatement("SELECT @a, @b");
        NpgsqlParameter[] parameters = extra is null
            ? [new NpgsqlParameter<int>("a", 1)]
            : [new NpgsqlParameter<int>("a", 1), new NpgsqlParameter<int>("b", 2), new NpgsqlParameter<int>(extra, 3)];

        var error = Assert.Throws<ArgumentException>(() => statement.Command(parameters));
        Assert.StartsWith(expected, error.Message, StringComparison.Ordinal);
    }
}
