namespace MailMesh.Testing.Infrastructure;

/// <summary>
/// Where the servers the test command started live. The test command (build.sh test) starts PostgreSQL and RabbitMQ
/// on loopback and exports these; the defaults match deploy/scripts/deps.sh.
/// </summary>
public static class TestEnvironment
{
    public static string PostgresConnectionString =>
        Environment.GetEnvironmentVariable("MAILMESH_TEST_POSTGRES")
        ?? "Host=127.0.0.1;Port=5432;Username=mailmesh;Password=mailmesh;Database=mailmesh";

    public static Uri RabbitMqUri =>
        new(Environment.GetEnvironmentVariable("MAILMESH_TEST_RABBITMQ") ?? "amqp://guest:guest@127.0.0.1:5672/");

    /// <summary>A short unique name for databases, virtual hosts and queues made by one test.</summary>
    public static string UniqueName(string prefix) =>
        $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 13, 63)].ToLowerInvariant();

    /// <summary>The repository's root (the directory holding MailMesh.sln), found upwards from the test's build output.</summary>
    public static string RepositoryRoot
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "MailMesh.sln")))
            {
                directory = directory.Parent;
            }

            return directory?.FullName ?? throw new InvalidOperationException("repository root (MailMesh.sln) not found above " + AppContext.BaseDirectory);
        }
    }
}
