using System.Security.Claims;
using MailMesh.ServiceDefaults.Security;
using MailMesh.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MailMesh.Admin.Tests;

/// <summary>
/// Logins against Admin:Users: the hash, the roles a principal carries, and the lockout with its end, counted in the
/// store as Standalone keeps it (a SQLite file; PostgreSQL's store is held to the same contract in
/// MailMesh.Storage.IntegrationTests, and replicas sharing it in MailMesh.Admin.FunctionalTests).
/// </summary>
public sealed class SignInTests : IAsyncLifetime
{
    // The smallest iteration count the format accepts: these tests are about the rules, not PBKDF2's cost.
    private static readonly string AliceHash = PasswordHash.Create("correct horse", PasswordHash.MinIterations);
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2030-01-02T03:04:05Z"));
    private readonly TestLoginStore _store = new();

    public Task InitializeAsync() => _store.InitializeAsync();

    public Task DisposeAsync() => _store.DisposeAsync().AsTask();

    private AdminSignIn Create(string role = "operator", int maxFailed = 3, IAdminLoginStore? store = null) => new(
        new Monitor<AdminAccountsOptions>(new AdminAccountsOptions { Users = [new AdminUserOptions { Name = "alice", PasswordHash = AliceHash, Role = role }] }),
        new Monitor<AdminUiOptions>(new AdminUiOptions { MaxFailedLogins = maxFailed, LockoutDuration = TimeSpan.FromMinutes(15) }),
        store ?? _store.Store,
        _time,
        NullLogger<AdminSignIn>.Instance);

    private static async Task<SignInResult> CheckAsync(AdminSignIn signIn, string name, string password) =>
        (await signIn.CheckAsync(name, password, CancellationToken.None)).Result;

    [Theory]
    [InlineData("viewer", new[] { "viewer" })]
    [InlineData("operator", new[] { "viewer", "operator" })]
    [InlineData("Admin", new[] { "viewer", "operator", "admin" })]
    public async Task The_right_password_signs_in_with_the_roles_the_role_grants(string role, string[] expected)
    {
        var (result, principal) = await Create(role).CheckAsync("ALICE", "correct horse", CancellationToken.None);
        Assert.Equal(SignInResult.Success, result);
        Assert.Equal("alice", principal!.Identity!.Name);
        Assert.Equal(expected, principal.FindAll(ClaimTypes.Role).Select(c => c.Value));
    }

    [Theory]
    [InlineData("alice", "wrong")]
    [InlineData("alice", "")]
    [InlineData("bob", "correct horse")]
    [InlineData("", "correct horse")]
    public async Task A_wrong_password_or_unknown_name_fails(string name, string password)
    {
        var (result, principal) = await Create().CheckAsync(name, password, CancellationToken.None);
        Assert.Equal(SignInResult.Failed, result);
        Assert.Null(principal);
    }

    [Fact]
    public async Task Failures_in_a_row_lock_the_account_even_against_the_right_password_until_the_lockout_ends()
    {
        var signIn = Create(maxFailed: 3);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(SignInResult.Failed, await CheckAsync(signIn, "alice", "guess" + i));
        }

        var (result, principal) = await signIn.CheckAsync("alice", "correct horse", CancellationToken.None);
        Assert.Equal(SignInResult.LockedOut, result);
        Assert.Null(principal);

        _time.Advance(TimeSpan.FromMinutes(15));
        Assert.Equal(SignInResult.Success, await CheckAsync(signIn, "alice", "correct horse"));
    }

    [Fact]
    public async Task A_success_resets_the_count()
    {
        var signIn = Create(maxFailed: 3);
        await CheckAsync(signIn, "alice", "guess");
        await CheckAsync(signIn, "alice", "guess");
        Assert.Equal(SignInResult.Success, await CheckAsync(signIn, "alice", "correct horse"));
        await CheckAsync(signIn, "alice", "guess");
        await CheckAsync(signIn, "alice", "guess");
        Assert.Equal(SignInResult.Success, await CheckAsync(signIn, "alice", "correct horse"));
    }

    [Fact]
    public async Task The_count_is_the_stores_so_another_process_on_it_sees_the_lockout_and_a_restart_keeps_it()
    {
        // Two sign-in services (two processes, or one before and after a restart) over one store: failures add up.
        var first = Create(maxFailed: 3);
        var second = Create(maxFailed: 3);
        Assert.Equal(SignInResult.Failed, await CheckAsync(first, "alice", "guess"));
        Assert.Equal(SignInResult.Failed, await CheckAsync(second, "Alice", "guess"));
        Assert.Equal(SignInResult.Failed, await CheckAsync(first, "ALICE", "guess"));

        Assert.Equal(SignInResult.LockedOut, await CheckAsync(second, "alice", "correct horse"));
        Assert.Equal(SignInResult.LockedOut, await CheckAsync(Create(maxFailed: 3), "alice", "correct horse"));
    }

    [Fact]
    public async Task Guesses_made_at_once_get_only_the_limits_number_of_password_checks()
    {
        // Each attempt is counted before its password is checked: of ten at once, three are checked, seven refused.
        var signIn = Create(maxFailed: 3);
        var results = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => Task.Run(() => CheckAsync(signIn, "alice", "guess" + i))));
        Assert.Equal(3, results.Count(r => r == SignInResult.Failed));
        Assert.Equal(7, results.Count(r => r == SignInResult.LockedOut));
    }

    [Fact]
    public async Task An_unknown_name_is_counted_and_locked_like_a_known_one()
    {
        // Otherwise "locked" would tell a guesser which names exist.
        var signIn = Create(maxFailed: 2);
        await CheckAsync(signIn, "mallory", "x");
        await CheckAsync(signIn, "mallory", "x");
        Assert.Equal(SignInResult.LockedOut, await CheckAsync(signIn, "mallory", "x"));
    }

    [Fact]
    public async Task Failures_a_day_old_are_forgotten_and_pruned()
    {
        var signIn = Create(maxFailed: 3);
        await CheckAsync(signIn, "alice", "guess");
        await CheckAsync(signIn, "alice", "guess");
        _time.Advance(AdminLogins.ForgetAfter + TimeSpan.FromMinutes(1));

        // Two more do not lock: the count started again.
        Assert.Equal(SignInResult.Failed, await CheckAsync(signIn, "alice", "guess"));
        Assert.Equal(SignInResult.Failed, await CheckAsync(signIn, "alice", "guess"));
        Assert.Equal(SignInResult.Success, await CheckAsync(signIn, "alice", "correct horse"));

        await CheckAsync(signIn, "old", "x");
        for (var i = 0; i < 3; i++)
        {
            await CheckAsync(signIn, "locked", "x");
        }

        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(0, await _store.Store.PruneFailuresAsync(_time.GetUtcNow(), CancellationToken.None));
        _time.Advance(AdminLogins.ForgetAfter);
        Assert.Equal(2, await _store.Store.PruneFailuresAsync(_time.GetUtcNow(), CancellationToken.None));
    }

    [Fact]
    public async Task A_store_that_does_not_answer_refuses_the_login()
    {
        var signIn = Create(store: new FailingLoginStore());
        var (result, principal) = await signIn.CheckAsync("alice", "correct horse", CancellationToken.None);
        Assert.Equal(SignInResult.Unavailable, result);
        Assert.Null(principal);
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
