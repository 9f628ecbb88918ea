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
    public void Block_comments_the_at_at_operator_and_case_are_read_as_PostgreSQL_and_Npgsql_read_them()
    {
        var statement = new PositionalStatement("SELECT /* @not, it's */ v @@ to_tsquery(@Query), @query, @@x FROM t");

        Assert.Equal("SELECT /* @not, it's */ v @@ to_tsquery($1), $1, @@x FROM t", statement.Sql);
        var command = statement.Command(new NpgsqlParameter<string>("@query", "a"));
        Assert.Equal("a", Assert.Single(command.Parameters).Value);
    }

    [Theory]
    [InlineData("SELECT $$@x$$, @y")]
    [InlineData("SELECT $1, @y")]
    [InlineData("SELECT E'\\'@x', @y")]
    public void Text_the_scanner_does_not_read_is_refused_when_the_statement_is_made(string sql) =>
        Assert.Throws<ArgumentException>(() => new PositionalStatement(sql));

    [Fact]
    public void A_refused_command_leaves_the_parameters_named()
    {
        var statement = new PositionalStatement("SELECT @a, @b");
        var a = new NpgsqlParameter<int>("a", 1);

        Assert.Throws<ArgumentException>(() => statement.Command(a));

        Assert.Equal("a", a.ParameterName);
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
