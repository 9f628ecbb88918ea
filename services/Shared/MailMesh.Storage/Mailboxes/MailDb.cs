using System.Collections.Concurrent;
using System.Data.Common;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MailMesh.Storage.Mailboxes;

/// <summary>
/// The connection (and, for a write, the transaction) one mail store operation runs on. The SQL of
/// <see cref="MailSql"/> is written once, in PostgreSQL's dialect restricted to what SQLite also understands; the
/// SQLite store translates three things mechanically (<see cref="SqliteDialect"/>): schema-qualified names
/// (<c>mailbox.x</c> → <c>mailbox_x</c>), array membership (<c>= ANY(@p)</c> → <c>IN (SELECT value FROM json_each(@p))</c>)
/// and row locks (<c>FOR UPDATE</c>, which a single writer does not need). Values are always parameters.
/// </summary>
internal abstract class MailDb(DbConnection connection, DbTransaction? transaction)
{
    /// <summary>The folders changed by this operation, signalled once it committed.</summary>
    public HashSet<MailboxChange> Changes { get; } = [];

    public DbCommand Command(string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = Translate(sql);
        return command;
    }

    protected abstract string Translate(string sql);

    /// <summary>A timestamp as this store keeps it (truncated to the millisecond, UTC).</summary>
    public abstract object Time(DateTimeOffset value);

    public abstract object Uuid(Guid value);

    /// <summary>A set of ids for <c>= ANY(@p)</c>.</summary>
    public abstract object Ids(IEnumerable<long> values);

    public abstract DateTimeOffset ReadTime(DbDataReader reader, int ordinal);
}

internal static class MailDbCommands
{
    public static DbCommand With(this DbCommand command, string name, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
        return command;
    }

    public static async Task<long?> ScalarInt64Async(this DbCommand command)
    {
        var value = await command.ExecuteScalarAsync(CancellationToken.None);
        return value is null or DBNull ? null : Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
    }
}

internal sealed class PostgresDialect(DbConnection connection, DbTransaction? transaction) : MailDb(connection, transaction)
{
    protected override string Translate(string sql) => sql;

    public override object Time(DateTimeOffset value) => StoreArguments.Truncate(value);

    public override object Uuid(Guid value) => value;

    public override object Ids(IEnumerable<long> values) => values.ToArray();

    public override DateTimeOffset ReadTime(DbDataReader reader, int ordinal) => reader.GetFieldValue<DateTimeOffset>(ordinal);
}

internal sealed partial class SqliteDialect(DbConnection connection, DbTransaction? transaction) : MailDb(connection, transaction)
{
    private static readonly ConcurrentDictionary<string, string> Translated = new(StringComparer.Ordinal);

    protected override string Translate(string sql) => Translated.GetOrAdd(sql, static text =>
    {
        var translated = text.Replace("mailbox.", "mailbox_", StringComparison.Ordinal)
            .Replace(" FOR UPDATE", string.Empty, StringComparison.Ordinal);
        return AnyArray().Replace(translated, "IN (SELECT value FROM json_each(@$1))");
    });

    public override object Time(DateTimeOffset value) => StoreArguments.ToUnixMs(value);

    public override object Uuid(Guid value) => value.ToByteArray();

    public override object Ids(IEnumerable<long> values) => JsonSerializer.Serialize(values);

    public override DateTimeOffset ReadTime(DbDataReader reader, int ordinal) => StoreArguments.FromUnixMs(reader.GetInt64(ordinal));

    [GeneratedRegex(@"= ANY\(@(\w+)\)")]
    private static partial Regex AnyArray();
}
