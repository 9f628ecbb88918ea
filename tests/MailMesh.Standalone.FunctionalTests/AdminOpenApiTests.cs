using MailMesh.ServiceDefaults.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>docs/openapi/admin-v1.yaml describes every admin route that the services map, with the scope it requires.</summary>
public sealed class AdminOpenApiTests
{
    [Fact]
    public void Every_admin_route_is_in_the_OpenAPI_description_with_its_scope()
    {
        var yaml = File.ReadAllLines(Path.Combine(MailMesh.Testing.Infrastructure.TestEnvironment.RepositoryRoot, "docs", "openapi", "admin-v1.yaml"));
        // Standalone maps every service's endpoints; built (never started) only to read its routes.
        var builder = WebApplication.CreateBuilder();
        builder.AddStandalone();
        var app = builder.Build();
        app.MapStandaloneEndpoints();
        var routes = ((IEndpointRouteBuilder)app).DataSources.SelectMany(d => d.Endpoints).OfType<RouteEndpoint>()
            .Where(r => r.Metadata.GetMetadata<AdminScopeRequirement>() is not null).ToList();
        Assert.NotEmpty(routes);
        foreach (var route in routes)
        {
            var path = "/" + route.RoutePattern.RawText!.Trim('/');
            var scope = route.Metadata.GetMetadata<AdminScopeRequirement>()?.Scope;
            foreach (var method in route.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()!.HttpMethods)
            {
                var described = Operation(yaml, path, method.ToLowerInvariant());
                Assert.True(described is not null, $"{method} {path} is not in docs/openapi/admin-v1.yaml");
                Assert.Equal(scope, described);
            }
        }
    }

    /// <summary>The x-mailmesh-scope of an operation, or null when the path or method is missing.</summary>
    private static string? Operation(string[] yaml, string path, string method)
    {
        var start = Array.IndexOf(yaml, $"  {path}:");
        if (start < 0)
        {
            return null;
        }

        var inOperation = false;
        for (var i = start + 1; i < yaml.Length && !(yaml[i].StartsWith("  /", StringComparison.Ordinal) || yaml[i].Length > 0 && yaml[i][0] != ' '); i++)
        {
            if (yaml[i].StartsWith("    ", StringComparison.Ordinal) && !yaml[i].StartsWith("     ", StringComparison.Ordinal))
            {
                inOperation = yaml[i].Trim() == method + ":";
            }
            else if (inOperation && yaml[i].Trim().StartsWith("x-mailmesh-scope:", StringComparison.Ordinal))
            {
                return yaml[i].Trim()["x-mailmesh-scope:".Length..].Trim();
            }
        }

        return null;
    }
}
