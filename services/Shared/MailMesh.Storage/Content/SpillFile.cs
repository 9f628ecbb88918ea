namespace MailMesh.Storage.Content;

/// <summary>
/// A temporary file for a message too large to hold on the heap (a delivery attempt's copy, an IMAP APPEND literal):
/// created new in a configured directory, preallocated, deleted when closed, and on Unix unlinked at once, so nothing is
/// left behind even if the process is killed before it closes the file.
/// </summary>
public static class SpillFile
{
    /// <summary>Creates <paramref name="name"/> in <paramref name="directory"/> (created if missing) for reading and writing.</summary>
    public static FileStream Create(string directory, string name, long length, int bufferSize)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentException.ThrowIfNullOrEmpty(name);
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, name);
        var file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.None,
            Options = FileOptions.DeleteOnClose | FileOptions.Asynchronous,
            BufferSize = bufferSize,
            PreallocationSize = length,
        });
        try
        {
            // Unix: the name is not needed once the file is open.
            if (!OperatingSystem.IsWindows())
            {
                File.Delete(path);
            }

            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }
}
