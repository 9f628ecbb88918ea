using System.Globalization;

namespace MailMesh.Admin.Components;

/// <summary>How the UI writes times, ages and sizes: UTC, invariant culture, short.</summary>
internal static class Format
{
    public static string Time(DateTimeOffset? at) =>
        at is { } t ? t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC" : "—";

    /// <summary>An age such as "45 s", "12 min", "3 h 5 min" or "2 d 4 h".</summary>
    public static string Age(double seconds)
    {
        var age = TimeSpan.FromSeconds(Math.Max(0, seconds));
        return age.TotalMinutes < 1 ? $"{(int)age.TotalSeconds} s"
            : age.TotalHours < 1 ? $"{(int)age.TotalMinutes} min"
            : age.TotalDays < 1 ? $"{(int)age.TotalHours} h {age.Minutes} min"
            : $"{(int)age.TotalDays} d {age.Hours} h";
    }

    public static string Size(long bytes) =>
        bytes < 1024 ? $"{bytes} B"
        : bytes < 1024 * 1024 ? (bytes / 1024.0).ToString("0.#", CultureInfo.InvariantCulture) + " KiB"
        : (bytes / (1024.0 * 1024)).ToString("0.#", CultureInfo.InvariantCulture) + " MiB";

    public static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
