using System.Security.Claims;
using MailMesh.Admin.Api;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;

namespace MailMesh.Admin.Components;

/// <summary>
/// What every page of the UI has: the admin API, the logged-in user and their role, and an error to show when the
/// API refuses or cannot be reached (a page renders what it has, and the error, instead of failing).
/// </summary>
public abstract class AdminPage : ComponentBase
{
    /// <summary>The admin API.</summary>
    [Inject]
    internal IAdminApi Api { get; set; } = default!;

    /// <summary>Logs what the user did (<see cref="AdminUiLog"/>).</summary>
    [Inject]
    internal ILogger<AdminPage> Logger { get; set; } = default!;

    /// <summary>The request (static server-side rendering); null in component tests.</summary>
    [CascadingParameter]
    protected HttpContext? HttpContext { get; set; }

    [CascadingParameter]
    private Task<AuthenticationState>? AuthenticationState { get; set; }

    /// <summary>The logged-in user (anonymous before <see cref="OnInitializedAsync"/>).</summary>
    protected ClaimsPrincipal User { get; private set; } = new();

    /// <summary>The last error of an API call, shown by the page.</summary>
    protected string? Error { get; set; }

    /// <summary>Operators and admins may act on messages and suppressions.</summary>
    protected bool CanOperate => User.IsInRole(AdminRoles.Operator);

    /// <summary>Cancelled when the browser goes away.</summary>
    protected CancellationToken Aborted => HttpContext?.RequestAborted ?? CancellationToken.None;

    /// <inheritdoc />
    protected override async Task OnInitializedAsync()
    {
        if (AuthenticationState is not null)
        {
            User = (await AuthenticationState).User;
        }

        await LoadAsync();
    }

    /// <summary>The user's name for the logs.</summary>
    protected string UserName => User.Identity?.Name ?? "?";

    /// <summary>False (and a logged refusal, and an error shown) when the user may not act.</summary>
    protected bool MayOperate(string action) => Allowed(CanOperate, action);

    /// <summary>Admins may change webhooks, keys and users.</summary>
    protected bool CanAdminister => User.IsInRole(AdminRoles.Admin);

    /// <summary>False (and a logged refusal, and an error shown) when the user is not an admin.</summary>
    protected bool MayAdminister(string action) => Allowed(CanAdminister, action);

    private bool Allowed(bool allowed, string action)
    {
        if (allowed)
        {
            return true;
        }

        AdminUiLog.Refused(Logger, UserName, Layout.MainLayout.RoleOf(User), action);
        Error = "Your role does not allow this.";
        return false;
    }

    /// <summary>Loads what the page shows; called on every request (GET and form posts).</summary>
    protected virtual Task LoadAsync() => Task.CompletedTask;

    /// <summary>Runs an API call; on failure records the error and returns the default.</summary>
    protected async Task<T?> TryAsync<T>(Func<CancellationToken, Task<T>> call)
    {
        ArgumentNullException.ThrowIfNull(call);
        try
        {
            return await call(Aborted);
        }
        catch (AdminApiException e)
        {
            Error = e.Message;
            return default;
        }
    }
}
