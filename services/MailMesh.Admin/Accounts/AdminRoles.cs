using System.Diagnostics.CodeAnalysis;

namespace MailMesh.Admin;

/// <summary>
/// The UI's roles, each including the one before: a viewer sees; an operator also acts on messages and suppressions;
/// an admin also manages mailboxes, keys and users.
/// </summary>
public static class AdminRoles
{
    /// <summary>Sees the dashboard, messages and suppressions; changes nothing.</summary>
    public const string Viewer = "viewer";

    /// <summary>Also retries, holds, releases, bounces and deletes messages, and adds and removes suppressions.</summary>
    public const string Operator = "operator";

    /// <summary>Also manages mailboxes and sees API keys and users.</summary>
    public const string Admin = "admin";

    /// <summary>Authorization policy: any logged-in account.</summary>
    public const string ViewerPolicy = "MailMesh.AdminUi.viewer";

    /// <summary>Authorization policy: operator or admin.</summary>
    public const string OperatorPolicy = "MailMesh.AdminUi.operator";

    /// <summary>Authorization policy: admin.</summary>
    public const string AdminPolicy = "MailMesh.AdminUi.admin";

    /// <summary>The roles a role grants, itself included (the claims a principal of that role carries).</summary>
    public static IReadOnlyList<string> Granted(string role) => role switch
    {
        Admin => [Viewer, Operator, Admin],
        Operator => [Viewer, Operator],
        _ => [Viewer],
    };

    /// <summary>Parses a configured role, case-insensitively.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out string? role)
    {
        role = text?.Trim().ToLowerInvariant() switch
        {
            Viewer => Viewer,
            Operator => Operator,
            Admin => Admin,
            _ => null,
        };
        return role is not null;
    }
}
