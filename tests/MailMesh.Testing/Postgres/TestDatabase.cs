using MailMesh.Testing.Infrastructure;
using Npgsql;

namespace MailMesh.Testing.Postgres;

/// <summary>
/// A fresh, uniquely named PostgreSQL database on the test server, dropped (WITH (FORCE), so leftover pooled
/// connections do not block it) on dispose:
/// <code>await using var db = await TestDatabase.CreateAsync();</code>
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    private readonly string _serverConnectionString;

    private TestDatabase(string name, string serverConnectionString, string connectionString)
    {
        Name = name;
        _serverConnectionString = serverConnectionString;
        ConnectionString = connectionString;
    }

    /// <summary>The database name (lower case, safe to use unquoted).</summary>
    public string Name { get; }

    /// <summary>A connection string for this database (pooling on).</summary>
    public string ConnectionString { get; }

    public static async Task<TestDatabase> CreateAsync(string prefix = "mailmesh_test", CancellationToken cancellationToken = default)
    {
        var server = TestEnvironment.PostgresConnectionString;
        var name = TestEnvironment.UniqueName(prefix);
        await using (var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server) { Pooling = false }.ConnectionString))
        {
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        var connectionString = new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
        return new TestDatabase(name, server, connectionString);
    }

    public async ValueTask DisposeAsync()
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(_serverConnectionString) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{Name}\" WITH (FORCE)", connection);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await command.ExecuteNonQueryAsync();
                return;
            }
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.InsufficientPrivilege or PostgresErrorCodes.ObjectInUse && attempt < 50)
            {
                // An autovacuum worker is in the database: a non-superuser cannot terminate it (PostgreSQL < 17),
                // and it finishes within moments. This is clean-up after the test, not a wait inside it.
                await Task.Delay(TimeSpan.FromMilliseconds(100));
            }
        }
    }
}
