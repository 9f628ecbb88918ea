using MailMesh.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace MailMesh.Migrator;

/// <summary>
/// Reads <c>ConnectionStrings:Spool</c> (environment <c>ConnectionStrings__Spool</c> or
/// <c>--ConnectionStrings:Spool=...</c>), applies the schema migrations and exits. The database may still be
/// starting (compose, a fresh cluster), so connection failures are retried for <c>Migrator:RetryFor</c>
/// (default 60 s).
/// </summary>
internal static partial class MigratorApp
{
    public const int Success = 0;
    public const int Failed = 1;
    public const int ConfigurationError = 2;

    private static readonly TimeSpan DefaultRetryFor = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    public static async Task<int> RunAsync(string[] args, TimeProvider time, TextWriter error, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(args);
        builder.AddMailMeshStorage(defaultMaxPoolSize: 2);
        using var host = builder.Build();

        ISchemaMigrator migrator;
        TimeSpan retryFor;
        try
        {
            _ = host.Services.GetRequiredService<IOptions<StorageOptions>>().Value;
            retryFor = builder.Configuration.GetValue("Migrator:RetryFor", DefaultRetryFor);
            migrator = host.Services.GetRequiredService<ISchemaMigrator>();
        }
        catch (Exception ex) when (Describe(ex) is { } message)
        {
            await error.WriteLineAsync($"mailmesh-migrator: configuration error: {message}");
            return ConfigurationError;
        }

        var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(MigratorApp));
        var deadline = time.GetUtcNow() + retryFor;
        var backoff = TimeSpan.FromMilliseconds(250);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await migrator.MigrateAsync(cancellationToken);
                return Success;
            }
            catch (Exception ex) when (IsTransient(ex) && time.GetUtcNow() + backoff < deadline)
            {
                LogRetrying(logger, attempt, backoff, ex.Message);
                await Task.Delay(backoff, time, cancellationToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                await error.WriteLineAsync($"mailmesh-migrator: migration failed: {ex.Message}");
                return Failed;
            }
        }
    }

    /// <summary>The database is not reachable yet, or is starting up / shutting down (SQLSTATE class 57, 08).</summary>
    private static bool IsTransient(Exception exception) => exception switch
    {
        PostgresException pg => pg.SqlState.StartsWith("57P", StringComparison.Ordinal) || pg.SqlState.StartsWith("08", StringComparison.Ordinal),
        NpgsqlException npgsql => npgsql.IsTransient,
        System.Net.Sockets.SocketException => true,
        TimeoutException => true,
        _ => false,
    };

    private static string? Describe(Exception exception)
    {
        for (var ex = exception; ex is not null; ex = ex.InnerException)
        {
            switch (ex)
            {
                case OptionsValidationException validation:
                    return string.Join("; ", validation.Failures);
                case InvalidOperationException when ex.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal):
                    return ex.Message;
            }
        }

        return null;
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Database not reachable (attempt {Attempt}), retrying in {Backoff}: {Reason}")]
    private static partial void LogRetrying(ILogger logger, int attempt, TimeSpan backoff, string reason);
}
