namespace MailMesh.Testing.Infrastructure;

/// <summary>The repository checkout the tests run from (the directory holding MailMesh.sln), for docs and charts.</summary>
public static class RepositoryRoot
{
    public static string Find()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "MailMesh.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("MailMesh.sln not found above " + AppContext.BaseDirectory);
    }
}
