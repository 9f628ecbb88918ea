namespace MailMesh.Cli;

/// <summary>What <c>mailmesh</c> exits with; scripts may rely on these (docs/operations.md).</summary>
internal static class ExitCodes
{
    /// <summary>Done.</summary>
    public const int Ok = 0;

    /// <summary>The command line (or the request it made) was wrong: unknown command, missing argument, a 400 or 409 answer.</summary>
    public const int Usage = 1;

    /// <summary>The message, suppression or account does not exist (404).</summary>
    public const int NotFound = 2;

    /// <summary>No key, a wrong key, or a key without the scope (401, 403).</summary>
    public const int Auth = 3;

    /// <summary>The server failed (5xx) or answered something unexpected.</summary>
    public const int Server = 4;

    /// <summary>The server could not be reached (connection refused, DNS, timeout).</summary>
    public const int Unreachable = 5;

    /// <summary>A bulk action was not confirmed.</summary>
    public const int Declined = 6;
}

/// <summary>Ends a command with an exit code and a message for standard error.</summary>
internal sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
