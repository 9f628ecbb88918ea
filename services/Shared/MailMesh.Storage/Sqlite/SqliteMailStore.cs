using MailMesh.Storage.Mailboxes;

namespace MailMesh.Storage.Sqlite;

/// <summary>
/// The mail store in the Standalone SQLite file (tables <c>mailbox_*</c>). Writes are operations of
/// <see cref="SqliteDatabase.WriteAsync{T}"/> (group commit, one writer: UIDs and quota need no row locks); a change is
/// signalled to this process's watches once its batch committed. One process owns the file, so in-process signals
/// reach every session.
/// </summary>
internal sealed class SqliteMailStore(SqliteDatabase database) : SqlMailStore
{
    protected override async Task<T> ReadAsync<T>(Func<MailDb, Task<T>> operation, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await operation(new SqliteDialect(connection, null));
    }

    protected override async Task<T> WriteAsync<T>(Func<MailDb, Task<T>> operation, long size, CancellationToken cancellationToken)
    {
        HashSet<MailboxChange>? changes = null;
        var result = await database.WriteAsync(async write =>
        {
            var db = new SqliteDialect(write.Connection, write.Transaction);
            var value = await operation(db);
            changes = db.Changes;
            return value;
        }, size, cancellationToken);

        foreach (var change in changes ?? [])
        {
            Hub.Publish(change);
        }

        return result;
    }
}
