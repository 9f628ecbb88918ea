namespace MailMesh.ServiceDefaults.Security;

/// <summary>
/// The "new-api-key" command of every service: prints a new random key and the SHA-256 hash to configure for it
/// (Admin:ApiKeys:n:Hash for an admin key, Ingress:Api:Keys:n:Hash for a submission key). The key itself is shown
/// once and stored nowhere.
/// </summary>
public static class NewApiKeyCommand
{
    public const string Verb = "new-api-key";

    public static async Task<int> RunAsync(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var key = ApiKeys.Create();
        await output.WriteLineAsync("key:  " + key);
        await output.WriteLineAsync("hash: " + ApiKeys.Hash(key));
        return 0;
    }
}
