using MailMesh.ServiceDefaults.Security;

namespace MailMesh.Standalone.FunctionalTests;

/// <summary>Admin and submission API keys the tests configure (as their hashes) and present.</summary>
internal static class TestKeys
{
    /// <summary>An admin key with every scope.</summary>
    public const string Admin = "mmk_test-admin-every-scope";

    /// <summary>An admin key that may only read message status.</summary>
    public const string MessagesOnly = "mmk_test-admin-messages-read";

    /// <summary>A submission key (Ingress:Api:Keys), not an admin key.</summary>
    public const string Submission = "mmk_test-submission";

    public static void AddTo(IDictionary<string, string> settings)
    {
        settings["Admin:ApiKeys:0:Name"] = "operator";
        settings["Admin:ApiKeys:0:Hash"] = ApiKeys.Hash(Admin);
        settings["Admin:ApiKeys:0:Scopes"] = string.Join(' ', AdminScopes.All);
        settings["Admin:ApiKeys:1:Name"] = "status-page";
        settings["Admin:ApiKeys:1:Hash"] = ApiKeys.Hash(MessagesOnly);
        settings["Admin:ApiKeys:1:Scopes"] = AdminScopes.MessagesRead;
        settings["Ingress:Api:Keys:0:Name"] = "app";
        settings["Ingress:Api:Keys:0:Hash"] = ApiKeys.Hash(Submission);
    }

    public static HttpClient Client(int port, string? key)
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        if (key is not null)
        {
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        }

        return http;
    }
}
