using System.Text.Json;

namespace MailMesh.Ingress.Http;

/// <summary>
/// One JSON value of a submission, read with <see cref="Utf8JsonReader"/> straight from the request body (which is held
/// in a budgeted <see cref="Memory.MessageBuffer"/>). Unlike <see cref="JsonDocument"/>, whose row table is rented at the
/// size of the whole payload, it costs one small object per value (at most <see cref="JsonTree.MaxValues"/>), and a
/// string is kept as a slice of the body (<see cref="Text"/>): a large text, html or base64 attachment is never copied
/// into a .NET string; it is decoded as the message is composed.
/// </summary>
internal sealed class JsonItem
{
    private static readonly List<KeyValuePair<string, JsonItem>> NoMembers = [];
    private static readonly List<JsonItem> NoItems = [];

    public JsonItem(JsonValueKind kind) => ValueKind = kind;

    public JsonValueKind ValueKind { get; }

    /// <summary>An object's members in order (names unique).</summary>
    public List<KeyValuePair<string, JsonItem>> Members { get; init; } = NoMembers;

    /// <summary>An array's items in order.</summary>
    public List<JsonItem> Items { get; init; } = NoItems;

    /// <summary>A string as sent (escapes not yet resolved), a slice of the body.</summary>
    public JsonText Text { get; init; }

    /// <summary>A string of at most <see cref="JsonTree.SmallString"/> octets, unescaped; null for a longer one (use
    /// <see cref="Text"/>).</summary>
    public string? SmallString { get; init; }

    /// <summary>A short string that is not valid Unicode (invalid UTF-8 or an escaped lone surrogate, RFC 8259 §8.2).</summary>
    public bool InvalidUnicode { get; init; }
}

/// <summary>A JSON document too large in some dimension to read (a limit of this API, not a syntax error).</summary>
internal sealed class JsonLimitException(string message) : Exception(message);

/// <summary>Builds the <see cref="JsonItem"/> tree of a request body.</summary>
internal static class JsonTree
{
    /// <summary>Values in one submission at the most: the recipients (Ingress:MaxRecipients is at most a few thousand),
    /// headers and attachments, with room to spare. A body of a million tiny values is refused before it costs memory.</summary>
    public const int MaxValues = 100_000;

    /// <summary>Strings up to this many octets are also kept unescaped as .NET strings (addresses, subject, header values).</summary>
    public const int SmallString = 64 * 1024;

    /// <summary>Parses <paramref name="json"/>; a syntax error is a <see cref="JsonException"/> (with line and byte), a
    /// duplicate member name a <see cref="JsonException"/> that says so, a value past a limit a <see cref="JsonLimitException"/>.</summary>
    public static JsonItem Parse(ReadOnlyMemory<byte> json, JsonReaderOptions options)
    {
        var reader = new Utf8JsonReader(json.Span, options);
        reader.Read();
        var count = 0;
        var root = Value(ref reader, json, "$", ref count);

        // Anything after the root value other than white space is a syntax error (the reader throws).
        reader.Read();
        return root;
    }

    private static JsonItem Value(ref Utf8JsonReader reader, ReadOnlyMemory<byte> json, string path, ref int count)
    {
        if (++count > MaxValues)
        {
            throw new JsonLimitException($"The body has more than {MaxValues} JSON values.");
        }

        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
                {
                    List<KeyValuePair<string, JsonItem>> members = [];
                    HashSet<string>? names = null;
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var name = reader.ValueSpan.Length > SmallString
                        ? throw new JsonLimitException($"A member name at {path} is longer than {SmallString} octets.")
                        : Small(ref reader) ?? throw new JsonException("A member name is not valid Unicode (RFC 8259 §8.2).", path, null, null);
                        names ??= new HashSet<string>(StringComparer.Ordinal);
                        if (!names.Add(name))
                        {
                            // RFC 8259 §4: names within an object SHOULD be unique; this API requires it.
                            throw new JsonException("A duplicate member name.", path + "." + name, null, null);
                        }

                        reader.Read();
                        members.Add(new(name, Value(ref reader, json, path + "." + name, ref count)));
                    }

                    return new JsonItem(JsonValueKind.Object) { Members = members };
                }

            case JsonTokenType.StartArray:
                {
                    List<JsonItem> items = [];
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        items.Add(Value(ref reader, json, path + "[" + items.Count + "]", ref count));
                    }

                    return new JsonItem(JsonValueKind.Array) { Items = items };
                }

            case JsonTokenType.String:
                {
                    // Without a value sequence, ValueSpan is the string between its quotes, escapes as sent.
                    var small = reader.ValueSpan.Length <= SmallString ? Small(ref reader) : null;
                    return new JsonItem(JsonValueKind.String)
                    {
                        Text = new JsonText(json.Slice(checked((int)reader.TokenStartIndex + 1), reader.ValueSpan.Length), reader.ValueIsEscaped),
                        SmallString = small,
                        InvalidUnicode = small is null && reader.ValueSpan.Length <= SmallString,
                    };
                }
            case JsonTokenType.Number:
                return new JsonItem(JsonValueKind.Number);
            case JsonTokenType.True:
                return new JsonItem(JsonValueKind.True);
            case JsonTokenType.False:
                return new JsonItem(JsonValueKind.False);
            default:
                return new JsonItem(JsonValueKind.Null);
        }
    }

    /// <summary>The string unescaped; null when it is not valid Unicode (invalid UTF-8, an escaped lone surrogate).</summary>
    private static string? Small(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }
}
