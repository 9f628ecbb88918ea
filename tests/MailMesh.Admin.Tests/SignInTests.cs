using System.Security.Claims;
using MailMesh.ServiceDefaults.Security;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Admin.Tests;

/// <summary>Logins against Admin:Users: the hash, the roles a principal carries, and the lockout with its end.</summary>
public sealed class SignInTests
{
    // The smallest iteration count the format accepts: these tests are about the rules, not PBKDF2's cost.
    private static readonly string AliceHash = PasswordHash.Create("correct horse", PasswordHash.MinIterations);
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2030-01-02T03:04:05Z"));

    private AdminSignIn Create(string role = "operator", int maxFailed = 3) => new(
        new Monitor<AdminAccountsOptions>(new AdminAccountsOptions { Users = [new AdminUserOptions { Name = "alice", PasswordHash = AliceHash, Role = role }] }),
        new Monitor<AdminUiOptions>(new AdminUiOptions { MaxFailedLogins = maxFailed, LockoutDuration = TimeSpan.FromMinutes(15) }),
        _time,
        NullLogger<AdminSignIn>.Instance);

    [Theory]
    [InlineData("viewer", new[] { "viewer" })]
    [InlineData("operator", new[] { "viewer", "operator" })]
    [InlineData("Admin", new[] { "viewer", "operator", "admin" })]
    public void The_right_password_signs_in_with_the_roles_the_role_grants(string role, string[] expected)
    {
        Assert.Equal(SignInResult.Success, Create(role).Check("ALICE", "correct horse", out var principal));
        Assert.Equal("alice", principal!.Identity!.Name);
        Assert.Equal(expected, principal.FindAll(ClaimTypes.Role).Select(c => c.Value));
    }

    [Theory]
    [InlineData("alice", "wrong")]
    [InlineData("alice", "")]
    [InlineData("bob", "correct horse")]
    [InlineData("", "correct horse")]
    public void A_wrong_password_or_unknown_name_fails(string name, string password)
    {
        Assert.Equal(SignInResult.Failed, Create().Check(name, password, out var principal));
        Assert.Null(principal);
    }

    [Fact]
    public void Failures_in_a_row_lock_the_account_even_against_the_right_password_until_the_lockout_ends()
    {
        var signIn = Create(maxFailed: 3);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(SignInResult.Failed, signIn.Check("alice", "guess" + i, out _));
        }

        Assert.Equal(SignInResult.LockedOut, signIn.Check("alice", "correct horse", out var principal));
        Assert.Null(principal);

        _time.Advance(TimeSpan.FromMinutes(15));
        Assert.Equal(SignInResult.Success, signIn.Check("alice", "correct horse", out _));
    }

    [Fact]
    public void A_success_resets_the_count()
    {
        var signIn = Create(maxFailed: 3);
        signIn.Check("alice", "guess", out _);
        signIn.Check("alice", "guess", out _);
        Assert.Equal(SignInResult.Success, signIn.Check("alice", "correct horse", out _));
        signIn.Check("alice", "guess", out _);
        signIn.Check("alice", "guess", out _);
        Assert.Equal(SignInResult.Success, signIn.Check("alice", "correct horse", out _));
    }

    [Fact]
    public void Bad_accounts_and_settings_are_named_by_their_keys()
    {
        var accounts = new AdminAccountsOptions
        {
            Users =
            [
                new AdminUserOptions { Name = "alice", PasswordHash = AliceHash, Role = "operator" },
                new AdminUserOptions { Name = "ALICE", PasswordHash = "plain", Role = "root" },
            ],
        };
        var errors = accounts.Validate().ToList();
        Assert.Contains(errors, e => e.StartsWith("Admin:Users:1:Name:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Admin:Users:1:PasswordHash:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Admin:Users:1:Role:", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.StartsWith("Admin:Users:0:", StringComparison.Ordinal));

        var ui = new AdminUiOptions { QueueUrl = new Uri("ftp://queue/"), MaxFailedLogins = 0 }.Validate().ToList();
        Assert.Contains(ui, e => e.StartsWith("Admin:Ui:QueueUrl:", StringComparison.Ordinal));
        Assert.Contains(ui, e => e.StartsWith("Admin:Ui:PolicyUrl:", StringComparison.Ordinal));
        Assert.Contains(ui, e => e.StartsWith("Admin:Ui:ApiKey:", StringComparison.Ordinal));
        Assert.Contains(ui, e => e.StartsWith("Admin:Ui:MaxFailedLogins:", StringComparison.Ordinal));
    }
}
