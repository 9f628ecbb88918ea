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

    protected DbConnection Connection => connection;

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

    /// <summary>
    /// Inserts a body row (<see cref="MailSql.InsertBody"/>) and returns its id. The content is written from the memory
    /// given, never copied whole onto the heap: it may be a memory map of a spilled message (IMAP APPEND, a large local
    /// delivery) of up to <c>Mailbox:MaxMessageSize</c>.
    /// </summary>
    public abstract Task<long> InsertBodyAsync(object? spoolId, ReadOnlyMemory<byte> content);
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

    /// <summary>A <see cref="ReadOnlyMemory{T}"/> bytea parameter: Npgsql writes it in pieces, with no copy (a
    /// <see cref="Stream"/> one would be buffered whole, see <c>MessageContentSource.Map</c>).</summary>
    public override async Task<long> InsertBodyAsync(object? spoolId, ReadOnlyMemory<byte> content)
    {
        await using var command = Command(MailSql.InsertBody).With("@spool_message_id", spoolId).With("@size", (long)content.Length);
        command.Parameters.Add(new Npgsql.NpgsqlParameter<ReadOnlyMemory<byte>>("@content", content));
        return (await command.ScalarInt64Async())!.Value;
    }
}

internal sealed partial class SqliteDialect(DbConnection connection, DbTransaction? transaction) : MailDb(connection, transaction)
{
    /// <summary>Up to this size a body is a parameter; a larger one gets a zeroblob filled by incremental blob I/O in
    /// pieces (as the spool stores a large message), since Microsoft.Data.Sqlite binds only whole arrays.</summary>
    private const int ParameterLimit = 64 * 1024;

    private static readonly ConcurrentDictionary<string, string> Translated = new(StringComparer.Ordinal);
    private static readonly string InsertZeroBlobBody = MailSql.InsertBody.Replace("@content, @size", "zeroblob(@size), @size", StringComparison.Ordinal);

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

    public override async Task<long> InsertBodyAsync(object? spoolId, ReadOnlyMemory<byte> content)
    {
        if (content.Length <= ParameterLimit)
        {
            await using var small = Command(MailSql.InsertBody)
                .With("@spool_message_id", spoolId).With("@content", WholeArray(content)).With("@size", (long)content.Length);
            return (await small.ScalarInt64Async())!.Value;
        }

        await using var command = Command(InsertZeroBlobBody).With("@spool_message_id", spoolId).With("@size", (long)content.Length);
        var id = (await command.ScalarInt64Async())!.Value;
        using var blob = new Microsoft.Data.Sqlite.SqliteBlob((Microsoft.Data.Sqlite.SqliteConnection)Connection, "mailbox_bodies", "content", id);
        for (var offset = 0; offset < content.Length; offset += ParameterLimit)
        {
            blob.Write(content.Span.Slice(offset, Math.Min(ParameterLimit, content.Length - offset)));
        }

        return id;
    }

    /// <summary>The spool hands over its own array: bind it as it is rather than copy it.</summary>
    private static byte[] WholeArray(ReadOnlyMemory<byte> memory) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(memory, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : memory.ToArray();

    [GeneratedRegex(@"= ANY\(@(\w+)\)")]
    private static partial Regex AnyArray();
}
