using MailMesh.Storage;
using MailMesh.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;

namespace MailMesh.Admin.Tests;

/// <summary>The login store as Standalone has it: a migrated SQLite file of its own, deleted afterwards.</summary>
internal sealed class TestLoginStore : IAsyncDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("mailmesh-admin-logins-");
    private readonly SqliteDatabase _database;

    public TestLoginStore()
    {
        _database = new SqliteDatabase(Path.Combine(_directory.FullName, "mailmesh.db"));
        Store = new SqliteAdminLoginStore(_database);
    }

    public IAdminLoginStore Store { get; }

    public Task InitializeAsync() =>
        new SqliteSchemaMigrator(_database, NullLogger<SqliteSchemaMigrator>.Instance).MigrateAsync(CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        await _database.DisposeAsync();
        try
        {
            _directory.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A temporary directory left behind is only litter.
        }
    }
}

/// <summary>A store whose database does not answer.</summary>
internal sealed class FailingLoginStore : IAdminLoginStore
{
    private static Task<T> Fail<T>() => Task.FromException<T>(new TimeoutException("the database did not answer"));

    public Task<DateTimeOffset?> GetLockedUntilAsync(string name, DateTimeOffset now, CancellationToken cancellationToken) => Fail<DateTimeOffset?>();

    public Task<AdminLoginFailures> RecordFailureAsync(string name, DateTimeOffset now, int maxFailures, TimeSpan lockout, CancellationToken cancellationToken) =>
        Fail<AdminLoginFailures>();

    public Task ClearFailuresAsync(string name, CancellationToken cancellationToken) => Fail<bool>();

    public Task<int> PruneFailuresAsync(DateTimeOffset now, CancellationToken cancellationToken) => Fail<int>();
}
