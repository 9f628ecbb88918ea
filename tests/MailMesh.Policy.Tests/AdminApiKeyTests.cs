using MailMesh.ServiceDefaults.Security;

namespace MailMesh.Policy.Tests;

/// <summary>Admin API key configuration (Admin:ApiKeys) and the new-api-key command.</summary>
public sealed class AdminApiKeyTests
{
    private static readonly string ValidHash = ApiKeys.Hash("mmk_example");

    [Fact]
    public async Task New_api_key_prints_a_random_key_and_its_hash()
    {
        using var first = new StringWriter();
        using var second = new StringWriter();
        Assert.Equal(0, await NewApiKeyCommand.RunAsync(first));
        Assert.Equal(0, await NewApiKeyCommand.RunAsync(second));

        var lines = first.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var key = lines[0]["key:".Length..].Trim();
        var hash = lines[1]["hash:".Length..].Trim();
        Assert.StartsWith(ApiKeys.Prefix, key, StringComparison.Ordinal);
        Assert.True(key.Length >= 40);
        Assert.Equal(ApiKeys.Hash(key), hash);
        Assert.True(ApiKeys.IsValidHash(hash));
        Assert.NotEqual(first.ToString(), second.ToString());
    }

    [Fact]
    public void A_valid_key_passes()
    {
        var options = new AdminApiOptions { ApiKeys = [new() { Name = "ops", Hash = ValidHash, Scopes = "messages:read, queue:read suppressions:write" }] };
        Assert.Empty(options.Validate());
    }

    [Theory]
    [InlineData("", "Admin:ApiKeys:0:Name")]
    [InlineData("has space", "Admin:ApiKeys:0:Name")]
    public void A_bad_name_is_named(string name, string expected)
    {
        var options = new AdminApiOptions { ApiKeys = [new() { Name = name, Hash = ValidHash, Scopes = "queue:read" }] };
        Assert.StartsWith(expected, Assert.Single(options.Validate()), StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_hash_or_scope_names_the_key()
    {
        var options = new AdminApiOptions
        {
            ApiKeys =
            [
                new() { Name = "ops", Hash = ValidHash, Scopes = "queue:read" },
                new() { Name = "dash", Hash = "not-hex", Scopes = "queue:read admin" },
                new() { Name = "OPS", Hash = ValidHash, Scopes = "" },
            ],
        };
        var errors = options.Validate().ToList();
        Assert.Contains(errors, e => e.StartsWith("Admin:ApiKeys:1:Hash (key 'dash'): must be the SHA-256", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Admin:ApiKeys:1:Scopes (key 'dash'): 'admin' is not a scope", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Admin:ApiKeys:2:Name: 'OPS' is used by another admin key", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Admin:ApiKeys:2:Hash (key 'OPS'): the same key is configured twice", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Admin:ApiKeys:2:Scopes (key 'OPS'): required", StringComparison.Ordinal));
    }

    [Fact]
    public void A_key_set_matches_only_the_configured_key()
    {
        var set = new ApiKeySet<string>([(ValidHash, "ops"), (ApiKeys.Hash("mmk_other"), "other")]);
        Assert.True(set.TryMatch("mmk_example", out var name));
        Assert.Equal("ops", name);
        Assert.False(set.TryMatch("mmk_exampl", out _));
        Assert.False(set.TryMatch(string.Empty, out _));
        Assert.False(set.TryMatch(new string('a', ApiKeys.MaxKeyLength + 1), out _));
    }
}
