using MailMesh.ServiceDefaults;
using MailMesh.ServiceDefaults.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MailMesh.Ingress.Http;

public static class HttpApiExtensions
{
    /// <summary>
    /// Registers the HTTP submission API next to <see cref="IngressExtensions.AddIngress"/>: options (Ingress:Api), the
    /// API-key authentication scheme and its authorization policy, the submission handler.
    /// </summary>
    public static IHostApplicationBuilder AddIngressHttpApi(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddValidatedOptions<HttpApiOptions>();
        services.TryAddSingleton<ApiKeyRing>();
        services.TryAddScoped<SubmissionHandler>();
        services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, displayName: "API key", configureOptions: null);
        services.AddAuthorizationBuilder()
            .AddPolicy(ApiKeyAuthenticationHandler.PolicyName, policy => policy
                .AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName)
                .RequireAuthenticatedUser());

        // The admin API's SMTP AUTH users (issue 12): Ingress owns them (Ingress:Auth:Users and spool.smtp_users).
        builder.AddAdminAuthentication();
        return builder;
    }

    /// <summary>
    /// Maps <c>POST /api/v1/messages</c> (GET /api/v1/messages/{id} is the Queue's). No Accepts metadata on purpose: the
    /// routing matcher would answer an unsupported Content-Type with a bare 415; the handler answers it with a problem
    /// document and Accept-Post.
    /// </summary>
    public static IEndpointRouteBuilder MapIngressHttpApi(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGroup("/api/v1")
            .WithTags("Ingress")
            .RequireAuthorization(ApiKeyAuthenticationHandler.PolicyName)
            .MapPost("/messages", static (HttpContext context, SubmissionHandler handler) => handler.HandleAsync(context))
            .WithName("SubmitMessage")
            .DisableAntiforgery();

        // /api/v1/admin/smtp-users: the SMTP AUTH users, configured and made through the admin API (never a hash).
        endpoints.MapSmtpUserAdminEndpoints();
        return endpoints;
    }
}
