using MailMesh.Testing.Smtp;

namespace MailMesh.Interop.IntegrationTests;

internal static class SinkWaits
{
    /// <summary>
    /// Waits for the first message whose content contains <paramref name="marker"/> (e.g. a unique Message-ID), so
    /// tests sharing a sink in one class see their own mail.
    /// </summary>
    public static async Task<SinkMessage> WaitForMessageAsync(this SmtpSink sink, string marker, TimeSpan timeout)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        for (var count = 1; ; count++)
        {
            var remaining = deadline - DateTimeOffset.UtcNow;
            if (remaining <= TimeSpan.Zero)
            {
                throw new TimeoutException($"no message containing '{marker}' reached {sink.EndPoint}; {sink.Messages.Count} arrived");
            }

            var messages = await sink.WaitForMessagesAsync(count, remaining);
            if (messages.FirstOrDefault(m => m.DataText.Contains(marker, StringComparison.Ordinal)) is { } match)
            {
                return match;
            }

            count = messages.Count;
        }
    }
}
