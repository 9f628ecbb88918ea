using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace MailMesh.Mailbox.Imap;

/// <summary>
/// Parses one framed command (<see cref="ImapCommandReader"/>: lines with their CRLFs, literals inline, streamed
/// literals as a NUL marker) into an <see cref="ImapCommand"/> by the grammar of RFC 9051 §9. Anything that does not
/// match is a syntax error with a short reason, answered "tag BAD" by the session (RFC 9051 §7.1.5).
/// </summary>
internal static class ImapParser
{
    /// <summary>The largest number of items in any parenthesised list or search program: a bound on work per command.</summary>
    private const int MaxItems = 1000;

    /// <summary>How deep search keys nest (NOT, OR, parentheses): a bound on recursion.</summary>
    private const int MaxDepth = 32;

    public static bool TryParse(ReadOnlySpan<byte> command, out ImapCommand? parsed, out string? tag, out string error)
    {
        parsed = null;
        tag = null;
        error = string.Empty;
        var t = new Tokenizer(command);
        try
        {
            tag = t.Tag();
            t.Sp();
            var name = t.Atom().ToUpperInvariant();
            var uid = false;
            if (name == "UID")
            {
                uid = true;
                t.Sp();
                name = t.Atom().ToUpperInvariant();
                if (name is not ("FETCH" or "SEARCH" or "STORE" or "COPY" or "MOVE" or "EXPUNGE"))
                {
                    Tokenizer.Fail("Unknown UID command");
                }
            }

            parsed = Arguments(ref t, tag, name, uid);
            t.End();
            return true;
        }
        catch (ImapSyntaxException ex)
        {
            parsed = null;
            error = ex.Message;
            return false;
        }
    }

    private static ImapCommand Arguments(ref Tokenizer t, string tag, string name, bool uid)
    {
        switch (name)
        {
            case "CAPABILITY" or "NOOP" or "LOGOUT" or "STARTTLS" or "CHECK" or "CLOSE" or "UNSELECT" or "IDLE" or "NAMESPACE":
                return new ImapCommand { Tag = tag, Name = name };
            case "EXPUNGE":
                if (uid)
                {
                    t.Sp();
                    return new ImapCommand { Tag = tag, Name = name, Uid = true, Sequence = t.SequenceSet() };
                }

                return new ImapCommand { Tag = tag, Name = name };
            case "LOGIN":
                {
                    t.Sp();
                    var user = t.AString();
                    t.Sp();
                    var password = t.AString();
                    return new ImapCommand { Tag = tag, Name = name, Arguments = [user, password] };
                }

            case "AUTHENTICATE":
                {
                    t.Sp();
                    var mechanism = t.Atom().ToUpperInvariant();
                    string? initial = null;
                    if (t.TrySp())
                    {
                        // RFC 4959 SASL-IR: base64 or "=" for an empty response.
                        initial = t.Atom();
                    }

                    return new ImapCommand { Tag = tag, Name = name, Arguments = [mechanism, initial] };
                }

            case "ENABLE":
                {
                    var capabilities = new List<string?>();
                    while (t.TrySp())
                    {
                        capabilities.Add(t.Atom().ToUpperInvariant());
                        Limit(capabilities.Count);
                    }

                    if (capabilities.Count == 0)
                    {
                        Tokenizer.Fail("ENABLE needs a capability");
                    }

                    return new ImapCommand { Tag = tag, Name = name, Arguments = capabilities };
                }

            case "ID":
                {
                    // RFC 2971: "(" field value ... ")" or NIL.
                    t.Sp();
                    var parameters = new List<string?>();
                    if (!t.TryNil())
                    {
                        t.Expect((byte)'(');
                        while (!t.TryExpect((byte)')'))
                        {
                            if (parameters.Count > 0)
                            {
                                t.Sp();
                            }

                            parameters.Add(t.String());
                            t.Sp();
                            parameters.Add(t.NString());
                            Limit(parameters.Count);
                        }
                    }

                    return new ImapCommand { Tag = tag, Name = name, Arguments = parameters };
                }

            case "SELECT" or "EXAMINE" or "CREATE":
                {
                    t.Sp();
                    var mailbox = t.Mailbox();
                    if (t.TrySp())
                    {
                        // Select parameters (CONDSTORE ...) and CREATE's (USE (...)) are not supported: skipped.
                        t.SkipParenthesised();
                    }

                    return new ImapCommand { Tag = tag, Name = name, Mailbox = mailbox };
                }

            case "DELETE" or "SUBSCRIBE" or "UNSUBSCRIBE":
                t.Sp();
                return new ImapCommand { Tag = tag, Name = name, Mailbox = t.Mailbox() };
            case "RENAME":
                {
                    t.Sp();
                    var from = t.Mailbox();
                    t.Sp();
                    return new ImapCommand { Tag = tag, Name = name, Mailbox = from, NewName = t.Mailbox() };
                }

            case "LIST" or "LSUB":
                return List(ref t, tag, name);
            case "STATUS":
                {
                    t.Sp();
                    var mailbox = t.Mailbox();
                    t.Sp();
                    t.Expect((byte)'(');
                    var items = new List<string?>();
                    do
                    {
                        items.Add(t.Atom().ToUpperInvariant());
                        Limit(items.Count);
                    }
                    while (t.TrySp());

                    t.Expect((byte)')');
                    return new ImapCommand { Tag = tag, Name = name, Mailbox = mailbox, Arguments = items };
                }

            case "APPEND":
                return Append(ref t, tag);
            case "FETCH":
                {
                    t.Sp();
                    var set = t.SequenceSet();
                    t.Sp();
                    var items = FetchItems(ref t);
                    if (t.TrySp())
                    {
                        t.SkipParenthesised();
                    }

                    return new ImapCommand { Tag = tag, Name = name, Uid = uid, Sequence = set, FetchItems = items };
                }

            case "STORE":
                return Store(ref t, tag, uid);
            case "COPY" or "MOVE":
                {
                    t.Sp();
                    var set = t.SequenceSet();
                    t.Sp();
                    return new ImapCommand { Tag = tag, Name = name, Uid = uid, Sequence = set, Mailbox = t.Mailbox() };
                }

            case "SEARCH":
                return new ImapCommand { Tag = tag, Name = name, Uid = uid, Search = Search(ref t) };
            default:
                Tokenizer.Fail("Unknown command");
                return null!;
        }
    }

    private static ImapCommand List(ref Tokenizer t, string tag, string name)
    {
        t.Sp();
        var options = new List<string>();
        if (name == "LIST" && t.Peek() == '(')
        {
            // RFC 5258 selection options, e.g. (SPECIAL-USE) or (SUBSCRIBED).
            t.Expect((byte)'(');
            while (!t.TryExpect((byte)')'))
            {
                if (options.Count > 0)
                {
                    t.Sp();
                }

                options.Add(t.Atom().ToUpperInvariant());
                Limit(options.Count);
            }

            t.Sp();
        }

        var arguments = new List<string?> { t.Mailbox(normalizeInbox: false) };
        t.Sp();
        if (name == "LIST" && t.Peek() == '(')
        {
            t.Expect((byte)'(');
            do
            {
                arguments.Add(t.ListMailbox());
                Limit(arguments.Count);
            }
            while (t.TrySp());

            t.Expect((byte)')');
        }
        else
        {
            arguments.Add(t.ListMailbox());
        }

        if (name == "LIST" && t.TrySp())
        {
            // RFC 5258 §3: RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (...)); kept as "RETURN:<option>".
            if (!t.Atom().Equals("RETURN", StringComparison.OrdinalIgnoreCase))
            {
                Tokenizer.Fail("Expected RETURN");
            }

            t.Sp();
            t.Expect((byte)'(');
            var first = true;
            while (!t.TryExpect((byte)')'))
            {
                if (!first)
                {
                    t.Sp();
                }

                first = false;
                var option = t.Atom().ToUpperInvariant();
                options.Add("RETURN:" + option);
                Limit(options.Count);
                if (option == "STATUS")
                {
                    t.Sp();
                    t.SkipParenthesised();
                }
            }
        }

        return new ImapCommand { Tag = tag, Name = name, Arguments = arguments, ListOptions = options };
    }

    private static ImapCommand Append(ref Tokenizer t, string tag)
    {
        t.Sp();
        var mailbox = t.Mailbox();
        var messages = new List<AppendMessage>();
        while (t.TrySp())
        {
            IReadOnlyList<string> flags = [];
            DateTimeOffset? date = null;
            if (t.Peek() == '(')
            {
                flags = t.FlagList();
                t.Sp();
            }

            if (t.Peek() == '"')
            {
                date = t.DateTime();
                t.Sp();
            }

            var (inline, streamed) = t.AppendLiteral();
            messages.Add(new AppendMessage(flags, date, inline, streamed));
            Limit(messages.Count);
        }

        if (messages.Count == 0)
        {
            Tokenizer.Fail("APPEND needs a message literal");
        }

        return new ImapCommand { Tag = tag, Name = "APPEND", Mailbox = mailbox, Appends = messages };
    }

    private static ImapCommand Store(ref Tokenizer t, string tag, bool uid)
    {
        t.Sp();
        var set = t.SequenceSet();
        t.Sp();
        if (t.Peek() == '(')
        {
            // RFC 7162 modifiers (UNCHANGEDSINCE) are not supported.
            Tokenizer.Fail("STORE modifiers are not supported");
        }

        var item = t.Atom().ToUpperInvariant();
        var mode = StoreMode.Replace;
        if (item.StartsWith('+') || item.StartsWith('-'))
        {
            mode = item[0] == '+' ? StoreMode.Add : StoreMode.Remove;
            item = item[1..];
        }

        var silent = item == "FLAGS.SILENT";
        if (!silent && item != "FLAGS")
        {
            Tokenizer.Fail("Expected FLAGS, +FLAGS or -FLAGS");
        }

        t.Sp();
        IReadOnlyList<string> flags;
        if (t.Peek() == '(')
        {
            flags = t.FlagList();
        }
        else
        {
            var list = new List<string> { t.Flag() };
            while (t.TrySp())
            {
                list.Add(t.Flag());
                Limit(list.Count);
            }

            flags = list;
        }

        return new ImapCommand { Tag = tag, Name = "STORE", Uid = uid, Sequence = set, Store = new StoreAction(mode, silent, flags) };
    }

    private static IReadOnlyList<FetchItem> FetchItems(ref Tokenizer t)
    {
        if (t.Peek() != '(')
        {
            var single = t.FetchAtom();
            switch (single.ToUpperInvariant())
            {
                // RFC 9051 §6.4.5 macros.
                case "ALL":
                    return [Simple(FetchKind.Flags), Simple(FetchKind.InternalDate), Simple(FetchKind.Size), Simple(FetchKind.Envelope)];
                case "FAST":
                    return [Simple(FetchKind.Flags), Simple(FetchKind.InternalDate), Simple(FetchKind.Size)];
                case "FULL":
                    return [Simple(FetchKind.Flags), Simple(FetchKind.InternalDate), Simple(FetchKind.Size), Simple(FetchKind.Envelope), Simple(FetchKind.Body)];
                default:
                    return [FetchItem(ref t, single)];
            }
        }

        t.Expect((byte)'(');
        var items = new List<FetchItem>();
        do
        {
            items.Add(FetchItem(ref t, t.FetchAtom()));
            Limit(items.Count);
        }
        while (t.TrySp());

        t.Expect((byte)')');
        return items;
    }

    private static FetchItem Simple(FetchKind kind) => new(kind) { ResponseName = Name(kind) };

    private static string Name(FetchKind kind) => kind switch
    {
        FetchKind.Flags => "FLAGS",
        FetchKind.Uid => "UID",
        FetchKind.InternalDate => "INTERNALDATE",
        FetchKind.Size => "RFC822.SIZE",
        FetchKind.Envelope => "ENVELOPE",
        FetchKind.BodyStructure => "BODYSTRUCTURE",
        _ => "BODY",
    };

    private static FetchItem FetchItem(ref Tokenizer t, string atom)
    {
        switch (atom.ToUpperInvariant())
        {
            case "FLAGS":
                return Simple(FetchKind.Flags);
            case "UID":
                return Simple(FetchKind.Uid);
            case "INTERNALDATE":
                return Simple(FetchKind.InternalDate);
            case "RFC822.SIZE":
                return Simple(FetchKind.Size);
            case "ENVELOPE":
                return Simple(FetchKind.Envelope);
            case "BODYSTRUCTURE":
                return Simple(FetchKind.BodyStructure);
            case "RFC822":
                return new FetchItem(FetchKind.Section) { ResponseName = "RFC822" };
            case "RFC822.HEADER":
                return new FetchItem(FetchKind.Section) { Text = SectionText.Header, Peek = true, ResponseName = "RFC822.HEADER" };
            case "RFC822.TEXT":
                return new FetchItem(FetchKind.Section) { Text = SectionText.Text, ResponseName = "RFC822.TEXT" };
            case "BODY" when t.Peek() != '[':
                return Simple(FetchKind.Body);
            case "BODY" or "BODY.PEEK":
                return Section(ref t, peek: atom.Length > 4);
            default:
                Tokenizer.Fail("Unknown FETCH item");
                return null!;
        }
    }

    // section = "[" [section-spec] "]"; section-spec = section-msgtext / (section-part ["." section-text]) (RFC 9051 §9).
    private static FetchItem Section(ref Tokenizer t, bool peek)
    {
        t.Expect((byte)'[');
        var part = new List<int>();
        var text = SectionText.All;
        var fields = new List<string>();
        var spec = new StringBuilder();
        if (t.Peek() != ']')
        {
            while (t.Peek() is >= (byte)'1' and <= (byte)'9')
            {
                var number = t.Number();
                if (number is < 1 or > 10000)
                {
                    Tokenizer.Fail("Bad section part");
                }

                part.Add((int)number);
                Limit(part.Count);
                spec.Append(number.ToString(CultureInfo.InvariantCulture));
                if (!t.TryExpect((byte)'.'))
                {
                    break;
                }

                spec.Append('.');
            }

            if (t.Peek() != ']')
            {
                var name = t.SectionAtom().ToUpperInvariant();
                text = name switch
                {
                    "HEADER" => SectionText.Header,
                    "HEADER.FIELDS" => SectionText.HeaderFields,
                    "HEADER.FIELDS.NOT" => SectionText.HeaderFieldsNot,
                    "TEXT" => SectionText.Text,
                    "MIME" when part.Count > 0 => SectionText.Mime,
                    _ => Fail<SectionText>("Bad section"),
                };
                spec.Append(name);
                if (text is SectionText.HeaderFields or SectionText.HeaderFieldsNot)
                {
                    t.Sp();
                    t.Expect((byte)'(');
                    do
                    {
                        fields.Add(t.AString());
                        Limit(fields.Count);
                    }
                    while (t.TrySp());

                    t.Expect((byte)')');
                    spec.Append(" (").AppendJoin(' ', fields.Select(f => f.ToUpperInvariant())).Append(')');
                }
            }
            else if (spec.Length > 0 && spec[^1] == '.')
            {
                Tokenizer.Fail("Bad section");
            }
        }

        t.Expect((byte)']');
        long? start = null;
        long? length = null;
        var responseName = "BODY[" + spec + "]";
        if (t.TryExpect((byte)'<'))
        {
            start = t.Number();
            t.Expect((byte)'.');
            length = t.Number();
            if (length == 0)
            {
                Tokenizer.Fail("Partial length must be positive");
            }

            t.Expect((byte)'>');

            // RFC 9051 §7.5.2: the response names only the origin octet.
            responseName += "<" + start.Value.ToString(CultureInfo.InvariantCulture) + ">";
        }

        return new FetchItem(FetchKind.Section)
        {
            Part = part,
            Text = text,
            Fields = fields,
            Peek = peek,
            PartialStart = start,
            PartialLength = length,
            ResponseName = responseName,
        };
    }

    private static SearchProgram Search(ref Tokenizer t)
    {
        t.Sp();
        List<string>? returns = null;
        string? charset = null;
        var word = t.PeekAtom();
        if (word.Equals("RETURN", StringComparison.OrdinalIgnoreCase))
        {
            // RFC 9051 §6.4.4 / RFC 4731: RETURN (MIN MAX ALL COUNT SAVE); an empty list means ALL.
            t.Atom();
            t.Sp();
            t.Expect((byte)'(');
            returns = [];
            while (!t.TryExpect((byte)')'))
            {
                if (returns.Count > 0)
                {
                    t.Sp();
                }

                var option = t.Atom().ToUpperInvariant();
                if (option is not ("MIN" or "MAX" or "ALL" or "COUNT"))
                {
                    Tokenizer.Fail("Unknown RETURN option");
                }

                returns.Add(option);
                Limit(returns.Count);
            }

            t.Sp();
            word = t.PeekAtom();
        }

        if (word.Equals("CHARSET", StringComparison.OrdinalIgnoreCase))
        {
            t.Atom();
            t.Sp();
            charset = t.AString().ToUpperInvariant();
            t.Sp();
        }

        var keys = new List<SearchKey>();
        var count = 0;
        do
        {
            keys.Add(SearchKey(ref t, 0, ref count));
        }
        while (t.TrySp());

        var criteria = keys.Count == 1 ? keys[0] : new SearchKey(SearchKind.And) { Children = keys };
        return new SearchProgram(criteria, returns, charset);
    }

    private static SearchKey SearchKey(ref Tokenizer t, int depth, ref int count)
    {
        if (depth > MaxDepth)
        {
            Tokenizer.Fail("Search program nested too deeply");
        }

        Limit(++count);
        if (t.TryExpect((byte)'('))
        {
            var children = new List<SearchKey>();
            do
            {
                children.Add(SearchKey(ref t, depth + 1, ref count));
            }
            while (t.TrySp());

            t.Expect((byte)')');
            return children.Count == 1 ? children[0] : new SearchKey(SearchKind.And) { Children = children };
        }

        if (t.Peek() is (>= (byte)'1' and <= (byte)'9') or (byte)'*')
        {
            return new SearchKey(SearchKind.SequenceSet) { Set = t.SequenceSet() };
        }

        var key = t.Atom().ToUpperInvariant();
        switch (key)
        {
            case "ALL":
                return new SearchKey(SearchKind.All);
            case "ANSWERED" or "DELETED" or "DRAFT" or "FLAGGED" or "SEEN":
                return new SearchKey(SearchKind.Flag) { Flag = "\\" + char.ToUpperInvariant(key[0]) + key[1..].ToLowerInvariant() };
            case "UNANSWERED" or "UNDELETED" or "UNDRAFT" or "UNFLAGGED" or "UNSEEN":
                return new SearchKey(SearchKind.NotFlag) { Flag = "\\" + char.ToUpperInvariant(key[2]) + key[3..].ToLowerInvariant() };
            case "KEYWORD" or "UNKEYWORD":
                t.Sp();
                return new SearchKey(key == "KEYWORD" ? SearchKind.Flag : SearchKind.NotFlag) { Flag = t.Atom() };
            case "NEW":
                return new SearchKey(SearchKind.New);
            case "OLD":
                return new SearchKey(SearchKind.Old);
            case "RECENT":
                return new SearchKey(SearchKind.Recent);
            case "NOT":
                t.Sp();
                return new SearchKey(SearchKind.Not) { Children = [SearchKey(ref t, depth + 1, ref count)] };
            case "OR":
                {
                    t.Sp();
                    var left = SearchKey(ref t, depth + 1, ref count);
                    t.Sp();
                    var right = SearchKey(ref t, depth + 1, ref count);
                    return new SearchKey(SearchKind.Or) { Children = [left, right] };
                }

            case "UID":
                t.Sp();
                return new SearchKey(SearchKind.Uid) { Set = t.SequenceSet() };
            case "LARGER" or "SMALLER":
                t.Sp();
                return new SearchKey(key == "LARGER" ? SearchKind.Larger : SearchKind.Smaller) { Number = t.Number() };
            case "BEFORE" or "ON" or "SINCE" or "SENTBEFORE" or "SENTON" or "SENTSINCE":
                {
                    t.Sp();
                    var kind = key switch
                    {
                        "BEFORE" => SearchKind.Before,
                        "ON" => SearchKind.On,
                        "SINCE" => SearchKind.Since,
                        "SENTBEFORE" => SearchKind.SentBefore,
                        "SENTON" => SearchKind.SentOn,
                        _ => SearchKind.SentSince,
                    };
                    return new SearchKey(kind) { Date = t.Date() };
                }

            case "BCC" or "CC" or "FROM" or "SUBJECT" or "TO":
                t.Sp();
                return new SearchKey(SearchKind.Header) { Field = key, Value = t.AString() };
            case "HEADER":
                {
                    t.Sp();
                    var field = t.AString();
                    t.Sp();
                    return new SearchKey(SearchKind.Header) { Field = field, Value = t.AString() };
                }

            case "BODY" or "TEXT":
                t.Sp();
                return new SearchKey(key == "BODY" ? SearchKind.Body : SearchKind.Text) { Value = t.AString() };
            default:
                Tokenizer.Fail("Unknown search key");
                return null!;
        }
    }

    private static void Limit(int count)
    {
        if (count > MaxItems)
        {
            Tokenizer.Fail("Too many items");
        }
    }

    [DoesNotReturn]
    private static T Fail<T>(string reason) => throw new ImapSyntaxException(reason);

    /// <summary>Reads tokens of the grammar from one command.</summary>
    private ref struct Tokenizer
    {
        private static readonly string[] Months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

        private readonly ReadOnlySpan<byte> _input;
        private int _position;
        private int _streamed;

        public Tokenizer(ReadOnlySpan<byte> input)
        {
            _input = input;
        }

        [DoesNotReturn]
        public static void Fail(string reason) => throw new ImapSyntaxException(reason);

        public readonly byte Peek() => _position < _input.Length ? _input[_position] : (byte)0;

        public void End()
        {
            if (_input.Length - _position != 2 || _input[_position] != '\r' || _input[_position + 1] != '\n')
            {
                Fail("Unexpected extra arguments");
            }
        }

        public void Sp() => Expect((byte)' ');

        public bool TrySp() => TryExpect((byte)' ');

        public void Expect(byte b)
        {
            if (!TryExpect(b))
            {
                Fail($"Expected '{(char)b}'");
            }
        }

        public bool TryExpect(byte b)
        {
            if (Peek() != b || _position >= _input.Length)
            {
                return false;
            }

            _position++;
            return true;
        }

        public string Tag()
        {
            var start = _position;
            while (Peek() is var b && ImapSyntax.IsAStringChar(b) && b != '+')
            {
                _position++;
            }

            if (_position == start)
            {
                Fail("Missing tag");
            }

            return Encoding.ASCII.GetString(_input[start.._position]);
        }

        public string Atom()
        {
            var start = _position;
            while (ImapSyntax.IsAtomChar(Peek()))
            {
                _position++;
            }

            if (_position == start)
            {
                Fail("Expected an atom");
            }

            return Encoding.ASCII.GetString(_input[start.._position]);
        }

        public readonly string PeekAtom()
        {
            var end = _position;
            while (end < _input.Length && ImapSyntax.IsAtomChar(_input[end]))
            {
                end++;
            }

            return Encoding.ASCII.GetString(_input[_position..end]);
        }

        /// <summary>A FETCH item name: an atom that stops at "[" (BODY[...]).</summary>
        public string FetchAtom()
        {
            var start = _position;
            while (ImapSyntax.IsAtomChar(Peek()) && Peek() != '[')
            {
                _position++;
            }

            if (_position == start)
            {
                Fail("Expected a FETCH item");
            }

            return Encoding.ASCII.GetString(_input[start.._position]);
        }

        /// <summary>A section-text name (HEADER.FIELDS...): letters and dots.</summary>
        public string SectionAtom()
        {
            var start = _position;
            while (Peek() is (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'a' and <= (byte)'z') or (byte)'.')
            {
                _position++;
            }

            if (_position == start)
            {
                Fail("Bad section");
            }

            return Encoding.ASCII.GetString(_input[start.._position]);
        }

        public long Number()
        {
            var start = _position;
            long value = 0;
            while (Peek() is >= (byte)'0' and <= (byte)'9')
            {
                if (_position - start >= 10)
                {
                    Fail("Number too large");
                }

                value = (value * 10) + (Peek() - '0');
                _position++;
            }

            if (_position == start || value > uint.MaxValue)
            {
                Fail("Expected a number");
            }

            return value;
        }

        public SequenceSet SequenceSet()
        {
            var start = _position;
            while (Peek() is (>= (byte)'0' and <= (byte)'9') or (byte)'*' or (byte)':' or (byte)',')
            {
                _position++;
            }

            if (!Imap.SequenceSet.TryParse(_input[start.._position], out var set))
            {
                Fail("Bad sequence set");
            }

            return set;
        }

        public bool TryNil()
        {
            if (_input.Length - _position >= 3 && System.Text.Ascii.EqualsIgnoreCase(_input.Slice(_position, 3), "NIL"u8)
                && !ImapSyntax.IsAStringChar(_input.Length > _position + 3 ? _input[_position + 3] : (byte)' '))
            {
                _position += 3;
                return true;
            }

            return false;
        }

        public string? NString() => TryNil() ? null : String();

        /// <summary>string = quoted / literal.</summary>
        public string String() => Peek() switch
        {
            (byte)'"' => Quoted(),
            (byte)'{' => Utf8(Literal()),
            _ => Fail<string>("Expected a string"),
        };

        /// <summary>astring = 1*ASTRING-CHAR / string.</summary>
        public string AString()
        {
            if (Peek() is (byte)'"' or (byte)'{')
            {
                return String();
            }

            var start = _position;
            while (ImapSyntax.IsAStringChar(Peek()))
            {
                _position++;
            }

            if (_position == start)
            {
                Fail("Expected a string");
            }

            return Utf8(_input[start.._position]);
        }

        /// <summary>mailbox = "INBOX" / astring; INBOX is case-insensitive (RFC 9051 §5.1).</summary>
        public string Mailbox(bool normalizeInbox = true)
        {
            var name = AString();
            return normalizeInbox && name.Equals("INBOX", StringComparison.OrdinalIgnoreCase) ? "INBOX" : name;
        }

        /// <summary>list-mailbox = 1*list-char / string.</summary>
        public string ListMailbox()
        {
            if (Peek() is (byte)'"' or (byte)'{')
            {
                return String();
            }

            var start = _position;
            while (ImapSyntax.IsListChar(Peek()))
            {
                _position++;
            }

            if (_position == start)
            {
                Fail("Expected a mailbox pattern");
            }

            return Utf8(_input[start.._position]);
        }

        public string Quoted()
        {
            Expect((byte)'"');
            var bytes = new List<byte>();
            while (true)
            {
                var b = Peek();
                if (_position >= _input.Length || b is (byte)'\r' or (byte)'\n' or 0)
                {
                    Fail("Unterminated quoted string");
                }

                _position++;
                if (b == '"')
                {
                    return Utf8(bytes.ToArray());
                }

                if (b == '\\')
                {
                    b = Peek();
                    if (b is not ((byte)'"' or (byte)'\\'))
                    {
                        Fail("Bad escape in quoted string");
                    }

                    _position++;
                }

                bytes.Add(b);
            }
        }

        /// <summary>literal = "{" number ["+"] "}" CRLF *CHAR8 (RFC 9051 §4.3, RFC 7888).</summary>
        public ReadOnlySpan<byte> Literal()
        {
            Expect((byte)'{');
            var size = Number();
            TryExpect((byte)'+');
            Expect((byte)'}');
            Expect((byte)'\r');
            Expect((byte)'\n');
            if (size > _input.Length - _position)
            {
                Fail("Literal shorter than announced");
            }

            var bytes = _input.Slice(_position, (int)size);
            _position += (int)size;
            return bytes;
        }

        /// <summary>APPEND's literal: inline, or the marker of a streamed literal (its index among the command's streamed literals).</summary>
        public (ReadOnlyMemory<byte> Inline, int StreamedIndex) AppendLiteral()
        {
            if (Peek() == ImapCommandReader.StreamedLiteralMarker && _position < _input.Length)
            {
                _position++;
                return (ReadOnlyMemory<byte>.Empty, _streamed++);
            }

            if (Peek() == '~')
            {
                // RFC 3516 literal8 is BINARY's; not supported.
                Fail("literal8 is not supported");
            }

            return (Literal().ToArray(), -1);
        }

        public IReadOnlyList<string> FlagList()
        {
            Expect((byte)'(');
            var flags = new List<string>();
            while (!TryExpect((byte)')'))
            {
                if (flags.Count > 0)
                {
                    Sp();
                }

                flags.Add(Flag());
                Limit(flags.Count);
            }

            return flags;
        }

        /// <summary>flag = "\" atom (system flags) / atom (keywords) (RFC 9051 §9).</summary>
        public string Flag()
        {
            var system = TryExpect((byte)'\\');
            var atom = Atom();
            if (!system)
            {
                return atom;
            }

            var canonical = atom.ToUpperInvariant() switch
            {
                "SEEN" => "\\Seen",
                "ANSWERED" => "\\Answered",
                "FLAGGED" => "\\Flagged",
                "DELETED" => "\\Deleted",
                "DRAFT" => "\\Draft",
                _ => null,
            };
            return canonical ?? Fail<string>("Unknown system flag");
        }

        /// <summary>date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month "-" date-year.</summary>
        public DateOnly Date()
        {
            var quoted = TryExpect((byte)'"');
            var start = _position;
            while (Peek() is var b && (char.IsAsciiLetterOrDigit((char)b) || b == '-'))
            {
                _position++;
            }

            var text = Encoding.ASCII.GetString(_input[start.._position]);
            if (quoted)
            {
                Expect((byte)'"');
            }

            var parts = text.Split('-');
            int day = 0, year = 0;
            if (parts.Length != 3 || parts[0].Length is < 1 or > 2 || parts[2].Length != 4
                || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out day)
                || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out year))
            {
                Fail("Bad date");
            }

            var month = Array.FindIndex(Months, m => m.Equals(parts[1], StringComparison.OrdinalIgnoreCase));
            if (month < 0 || year < 1 || day < 1 || day > System.DateTime.DaysInMonth(year, month + 1))
            {
                Fail("Bad date");
            }

            return new DateOnly(year, month + 1, day);
        }

        /// <summary>date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE.</summary>
        public DateTimeOffset DateTime()
        {
            var text = Quoted();
            if (!DateTimeOffset.TryParseExact(text.TrimStart(), ["d-MMM-yyyy HH:mm:ss zzzz", "dd-MMM-yyyy HH:mm:ss zzzz"], CultureInfo.InvariantCulture, DateTimeStyles.None, out var value)
                && !TryZone(text, out value))
            {
                Fail("Bad date-time");
            }

            return value;
        }

        // .NET's zzz wants "+02:00"; IMAP writes "+0200".
        private static bool TryZone(string text, out DateTimeOffset value)
        {
            value = default;
            var trimmed = text.Trim();
            if (trimmed.Length < 6 || trimmed[^5] is not ('+' or '-'))
            {
                return false;
            }

            var fixedZone = trimmed[..^2] + ":" + trimmed[^2..];
            return DateTimeOffset.TryParseExact(fixedZone, ["d-MMM-yyyy HH:mm:ss zzz", "dd-MMM-yyyy HH:mm:ss zzz"], CultureInfo.InvariantCulture, DateTimeStyles.None, out value);
        }

        /// <summary>Skips one parenthesised list (nested), literals and quoted strings included.</summary>
        public void SkipParenthesised()
        {
            Expect((byte)'(');
            var depth = 1;
            while (depth > 0)
            {
                switch (Peek())
                {
                    case (byte)'(':
                        depth++;
                        if (depth > MaxDepth)
                        {
                            Fail("Nested too deeply");
                        }

                        _position++;
                        break;
                    case (byte)')':
                        depth--;
                        _position++;
                        break;
                    case (byte)'"':
                        Quoted();
                        break;
                    case (byte)'{':
                        Literal();
                        break;
                    case (byte)'\r' or (byte)'\n':
                        Fail("Unterminated list");
                        break;
                    default:
                        if (_position >= _input.Length)
                        {
                            Fail("Unterminated list");
                        }

                        _position++;
                        break;
                }
            }
        }

        private static string Utf8(ReadOnlySpan<byte> bytes)
        {
            try
            {
                return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                Fail("Invalid UTF-8");
                return null!;
            }
        }
    }
}

/// <summary>A syntax error in a command; its message is the text of the BAD response.</summary>
internal sealed class ImapSyntaxException(string message) : Exception(message);
