namespace MailMesh.ServiceDefaults.Security;

/// <summary>The "hash-password" command of every service: one password line on stdin, the PBKDF2 hash string on stdout
/// (for Ingress:Auth:Users:n:PasswordHash and Mailbox:Users:n:PasswordHash).</summary>
public static class PasswordHashCommand
{
    public const string Verb = "hash-password";

    public static async Task<int> RunAsync(TextReader input, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var password = await input.ReadLineAsync();
        if (string.IsNullOrEmpty(password))
        {
            await error.WriteLineAsync("hash-password: expected the password on standard input");
            return 2;
        }

        await output.WriteLineAsync(PasswordHash.Create(password));
        return 0;
    }
}
