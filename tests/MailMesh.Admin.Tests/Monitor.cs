using Microsoft.Extensions.Options;

namespace MailMesh.Admin.Tests;

/// <summary>Options that never change, for the types that take a monitor.</summary>
internal sealed class Monitor<T>(T value) : IOptionsMonitor<T>
{
    public T CurrentValue => value;

    public T Get(string? name) => value;

    public IDisposable? OnChange(Action<T, string?> listener) => null;
}
