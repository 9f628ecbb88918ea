namespace MailMesh.ServiceDefaults;

/// <summary>Start-up check of a directory a service writes temporary files to (spilled bodies, attempt copies).</summary>
public static class WritableDirectory
{
    /// <summary>Creates <paramref name="path"/> and checks that a file can be created there; null when it can, else why not.</summary>
    public static string? Check(string? path)
    {
        if (string.IsNullOrWhiteSpace(path))
        {
            return "must name a directory";
        }

        try
        {
            Directory.CreateDirectory(path);
            using var probe = new FileStream(
                Path.Combine(path, "mailmesh-probe-" + Guid.NewGuid().ToString("N") + ".tmp"),
                FileMode.CreateNew,
                FileAccess.Write,
                FileShare.None,
                1,
                FileOptions.DeleteOnClose);
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return "cannot create a file in '" + path + "': " + ex.Message;
        }
    }
}
