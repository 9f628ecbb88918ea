using Xunit;

namespace MailMesh.Testing.Infrastructure;

/// <summary>
/// Waiting in a test for something another task, process or server does in its own time: the condition is polled every
/// 20 ms until it holds, and the test fails with <c>failure</c> when it has not held within the patience given.
/// </summary>
public static class Eventually
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(20);

    public static Task WaitUntilAsync(Func<bool> condition, TimeSpan patience, string failure) =>
        WaitUntilAsync(() => Task.FromResult(condition()), patience, () => failure);

    public static Task WaitUntilAsync(Func<bool> condition, TimeSpan patience, Func<string> failure) =>
        WaitUntilAsync(() => Task.FromResult(condition()), patience, failure);

    public static Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan patience, string failure) =>
        WaitUntilAsync(condition, patience, () => failure);

    /// <summary>Polls <paramref name="condition"/>; <paramref name="failure"/> is asked only once the wait has failed.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan patience, Func<string> failure)
    {
        var deadline = DateTimeOffset.UtcNow + patience;
        while (!await condition())
        {
            Assert.True(DateTimeOffset.UtcNow < deadline, failure());
            await Task.Delay(Poll);
        }
    }
}
