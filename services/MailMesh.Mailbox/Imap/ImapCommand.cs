namespace MailMesh.Mailbox.Imap;

/// <summary>
/// One parsed IMAP command (RFC 9051 §6). One shape for all commands: the name says which of the argument properties
/// are set; the parser (<see cref="ImapParser"/>) is the only place that fills them.
/// </summary>
internal sealed class ImapCommand
{
    public required string Tag { get; init; }

    /// <summary>The command name, upper case ("FETCH"; "UID" prefixes set <see cref="Uid"/> instead).</summary>
    public required string Name { get; init; }

    /// <summary>True for UID FETCH, UID SEARCH, UID STORE, UID COPY, UID MOVE, UID EXPUNGE.</summary>
    public bool Uid { get; init; }

    /// <summary>Mailbox argument (SELECT, EXAMINE, CREATE, DELETE, RENAME source, SUBSCRIBE, STATUS, APPEND, COPY/MOVE target).</summary>
    public string? Mailbox { get; init; }

    /// <summary>RENAME's new name.</summary>
    public string? NewName { get; init; }

    /// <summary>Plain string arguments: LOGIN user and password; AUTHENTICATE mechanism and initial response; ENABLE
    /// capabilities; LIST/LSUB reference then patterns; STATUS items; ID parameters (NIL kept as null).</summary>
    public IReadOnlyList<string?> Arguments { get; init; } = [];

    public SequenceSet? Sequence { get; init; }

    public IReadOnlyList<FetchItem>? FetchItems { get; init; }

    /// <summary>FETCH was given a macro or a single item rather than a list (affects nothing but logging).</summary>
    public SearchProgram? Search { get; init; }

    public StoreAction? Store { get; init; }

    /// <summary>LIST's selection and return options (RFC 5258 / RFC 6154), upper case.</summary>
    public IReadOnlyList<string> ListOptions { get; init; } = [];

    /// <summary>APPEND's messages (one, or more with MULTIAPPEND).</summary>
    public IReadOnlyList<AppendMessage> Appends { get; init; } = [];
}

/// <summary>One message of an APPEND: flags, internal date, and the literal (inline bytes or the streamed literal).</summary>
internal sealed record AppendMessage(IReadOnlyList<string> Flags, DateTimeOffset? InternalDate, ReadOnlyMemory<byte> Inline, int StreamedIndex);

/// <summary>STORE's action (RFC 9051 §6.4.6): replace, add or remove flags, optionally without the untagged FETCH.</summary>
internal sealed record StoreAction(StoreMode Mode, bool Silent, IReadOnlyList<string> Flags);

internal enum StoreMode
{
    Replace,
    Add,
    Remove,
}

/// <summary>What FETCH returns for one message (RFC 9051 §6.4.5).</summary>
internal enum FetchKind
{
    Flags,
    Uid,
    InternalDate,
    Size,
    Envelope,
    BodyStructure,

    /// <summary>BODY without a section: the non-extensible BODYSTRUCTURE.</summary>
    Body,

    /// <summary>BODY[section]&lt;partial&gt; or BODY.PEEK[...]; RFC822, RFC822.HEADER, RFC822.TEXT map here too.</summary>
    Section,
}

/// <summary>The part of a message a BODY[...] section names (RFC 9051 §6.4.5).</summary>
internal enum SectionText
{
    /// <summary>The whole part (or the whole message when the path is empty).</summary>
    All,
    Header,
    HeaderFields,
    HeaderFieldsNot,
    Text,
    Mime,
}

/// <summary>A FETCH data item. For sections: part path (1-based), what of it, header field names, partial range.</summary>
internal sealed record FetchItem(FetchKind Kind)
{
    public IReadOnlyList<int> Part { get; init; } = [];

    public SectionText Text { get; init; } = SectionText.All;

    public IReadOnlyList<string> Fields { get; init; } = [];

    /// <summary>BODY.PEEK (or RFC822.HEADER): do not set \Seen.</summary>
    public bool Peek { get; init; }

    public long? PartialStart { get; init; }

    public long? PartialLength { get; init; }

    /// <summary>How the item is named in the response ("BODY[1.HEADER.FIELDS (SUBJECT)]&lt;0&gt;", "RFC822.HEADER").</summary>
    public required string ResponseName { get; init; }
}

/// <summary>SEARCH's criteria and RETURN options (RFC 9051 §6.4.4, ESEARCH).</summary>
internal sealed record SearchProgram(SearchKey Criteria, IReadOnlyList<string>? Return, string? Charset);

internal enum SearchKind
{
    All,
    And,
    Or,
    Not,
    SequenceSet,
    Uid,
    Flag,
    NotFlag,
    New,
    Old,
    Recent,
    Larger,
    Smaller,
    Before,
    On,
    Since,
    SentBefore,
    SentOn,
    SentSince,
    Header,
    Body,
    Text,
}

/// <summary>A search key; And/Or/Not have children; headers keep their field name in <see cref="Field"/>.</summary>
internal sealed record SearchKey(SearchKind Kind)
{
    public IReadOnlyList<SearchKey> Children { get; init; } = [];

    public SequenceSet? Set { get; init; }

    public string? Flag { get; init; }

    public string? Field { get; init; }

    public string? Value { get; init; }

    public long Number { get; init; }

    public DateOnly Date { get; init; }
}
