using MailMesh.Admin.Api;
using MailMesh.Admin.Components;
using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.Options;

namespace MailMesh.Admin;

/// <summary>Registers and maps the admin UI: on its own (Program.cs) or inside Standalone, always under <c>/admin</c>.</summary>
public static class AdminUiExtensions
{
    /// <summary>The UI's path; every page, the stylesheet and the session cookie live under it.</summary>
    public const string BasePath = "/admin";

    /// <summary>The cookie authentication scheme of UI logins (separate from the admin API's key scheme).</summary>
    public const string CookieScheme = "MailMesh.AdminUi";

    /// <summary>Name of the session cookie.</summary>
    public const string CookieName = "mailmesh-admin";

    /// <summary>The name of the admin API key Standalone makes for its own UI when Admin:Ui:ApiKey is not set.</summary>
    public const string StandaloneKeyName = "admin-ui-standalone";

    /// <summary>Share of PostgreSQL connections of one UI process (docs/operations.md, "Connection budget").</summary>
    public const int DefaultMaxPoolSize = 2;

    /// <summary>
    /// Registers the UI: accounts and options (validated at start-up), cookie login with lockout, role policies, the
    /// admin API client and the Razor components. Failed logins, lockouts and the key ring that protects the cookie are
    /// in the store (ConnectionStrings:Spool in the distributed mode, shared by every UI replica; Standalone's SQLite). <paramref name="sameProcess"/> (Standalone) lets the API URLs default to
    /// this process and, without Admin:Ui:ApiKey, makes a key for this process only (never written anywhere).
    /// </summary>
    public static IHostApplicationBuilder AddAdminUi(this IHostApplicationBuilder builder, bool sameProcess = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddValidatedOptions<AdminAccountsOptions>();
        services.AddValidatedOptions<AdminUiOptions>().Configure(o => o.SameProcess = sameProcess);
        if (sameProcess && string.IsNullOrWhiteSpace(builder.Configuration["Admin:Ui:ApiKey"]))
        {
            var key = ApiKeys.Create();
            var scopes = string.Join(' ', AdminScopes.All.Where(s => s != AdminScopes.MessagesContent));
            services.PostConfigure<AdminApiOptions>(o => o.ApiKeys.Add(new AdminApiKeyOptions { Name = StandaloneKeyName, Hash = ApiKeys.Hash(key), Scopes = scopes }));
            services.PostConfigure<AdminUiOptions>(o => o.ApiKey = key);
        }

        builder.AddMailMeshStorage(DefaultMaxPoolSize);
        services.AddHealthChecks().AddStoreCheck();
        services.AddAdminUiKeyRing();
        services.AddSingleton<AdminSignIn>();
        services.AddHttpContextAccessor();
        services.AddHttpClient<IAdminApi, AdminApiClient>(AdminApiClient.HttpClientName)
            .ConfigureHttpClient((provider, http) => http.Timeout = provider.GetRequiredService<IOptionsMonitor<AdminUiOptions>>().CurrentValue.ApiTimeout);

        services.AddAuthentication().AddCookie(CookieScheme, cookie =>
        {
            cookie.Cookie.Name = CookieName;
            cookie.Cookie.Path = BasePath;
            cookie.Cookie.HttpOnly = true;
            cookie.Cookie.SameSite = SameSiteMode.Strict;
            cookie.LoginPath = BasePath + "/login";
            cookie.LogoutPath = BasePath + "/logout";
            cookie.AccessDeniedPath = BasePath + "/denied";
            cookie.ReturnUrlParameter = "returnUrl";
            cookie.SlidingExpiration = true;
        });
        services.AddOptions<CookieAuthenticationOptions>(CookieScheme).Configure<IOptionsMonitor<AdminUiOptions>>((cookie, ui) =>
        {
            cookie.ExpireTimeSpan = ui.CurrentValue.SessionDuration;
            cookie.Cookie.SecurePolicy = ui.CurrentValue.SecureCookie ? CookieSecurePolicy.Always : CookieSecurePolicy.SameAsRequest;
        });
        services.AddAuthorizationBuilder()
            .AddPolicy(AdminRoles.ViewerPolicy, p => p.AddAuthenticationSchemes(CookieScheme).RequireAuthenticatedUser().RequireRole(AdminRoles.Viewer))
            .AddPolicy(AdminRoles.OperatorPolicy, p => p.AddAuthenticationSchemes(CookieScheme).RequireAuthenticatedUser().RequireRole(AdminRoles.Operator))
            .AddPolicy(AdminRoles.AdminPolicy, p => p.AddAuthenticationSchemes(CookieScheme).RequireAuthenticatedUser().RequireRole(AdminRoles.Admin));
        services.AddCascadingAuthenticationState();
        services.AddRazorComponents();
        return builder;
    }

    /// <summary>Maps the UI's pages, its stylesheet and logout under <c>/admin</c>, with security headers on every answer there.</summary>
    public static WebApplication MapAdminUi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.Use((context, next) =>
        {
            if (context.Request.Path.StartsWithSegments(BasePath))
            {
                var headers = context.Response.Headers;
                // No script at all, no framing, forms post only here (the UI is static server-side rendering).
                headers.ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'";
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "same-origin";
                headers.CacheControl = context.Request.Path.Equals(BasePath + "/app.css", StringComparison.Ordinal) ? "public, max-age=3600" : "no-store";
            }

            return next(context);
        });

        // After authentication and authorization (WebApplication adds those first): the login, logout and action forms
        // carry a token bound to the user, checked here. Endpoints that ask for no check (the APIs' JSON) are untouched.
        app.UseAntiforgery();

        app.MapGet(BasePath + "/app.css", static () => TypedResults.Stream(
                typeof(AdminUiExtensions).Assembly.GetManifestResourceStream("MailMesh.Admin.app.css")!, "text/css; charset=utf-8"))
            .ExcludeFromDescription();
        app.MapPost(BasePath + "/logout", static async (HttpContext context) =>
            {
                await context.SignOutAsync(CookieScheme);
                return TypedResults.Redirect(BasePath + "/login");
            })
            .RequireAuthorization(AdminRoles.ViewerPolicy)
            .WithMetadata(new RequireAntiforgeryTokenAttribute())
            .ExcludeFromDescription();
        app.MapRazorComponents<App>();
        return app;
    }
}
