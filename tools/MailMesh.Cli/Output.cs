using System.Text.Encodings.Web;
using System.Text.Json;

namespace MailMesh.Cli;

/// <summary>Tables for people, JSON for scripts (<c>--json</c> prints the API's answer as it came).</summary>
internal static class Output
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    public static void WriteJson(TextWriter writer, JsonElement element) => writer.WriteLine(JsonSerializer.Serialize(element, Json));

    /// <summary>Columns padded to their widest cell; numbers right-aligned.</summary>
    public static void WriteTable(TextWriter writer, IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows, ISet<int>? rightAligned = null)
    {
        var all = rows.ToList();
        var widths = headers.Select((h, i) => Math.Max(h.Length, all.Count == 0 ? 0 : all.Max(r => i < r.Count ? r[i].Length : 0))).ToArray();
        void Line(IReadOnlyList<string> cells) => writer.WriteLine(string.Join("  ", cells.Select((c, i) =>
            rightAligned?.Contains(i) == true ? c.PadLeft(widths[i]) : (i == cells.Count - 1 ? c : c.PadRight(widths[i])))).TrimEnd());
        Line(headers);
        foreach (var row in all)
        {
            Line(row);
        }
    }

    public static string Str(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText()
            : string.Empty;

    /// <summary>A duration as a person reads it: 45s, 12m, 3h, 2d.</summary>
    public static string Age(double seconds) => seconds switch
    {
        < 60 => $"{seconds:0}s",
        < 3600 => $"{seconds / 60:0}m",
        < 172800 => $"{seconds / 3600:0}h",
        _ => $"{seconds / 86400:0}d",
    };
}
