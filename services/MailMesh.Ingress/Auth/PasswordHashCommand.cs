namespace MailMesh.Ingress.Auth;

/// <summary>The "hash-password" command: one password line on stdin, the PBKDF2 hash string on stdout.</summary>
internal static class PasswordHashCommand
{
    public static async Task<int> RunAsync(TextReader input, TextWriter output, TextWriter error)
    {
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
