using System.Text;
using MailMesh.Mailbox.Imap;

namespace MailMesh.Mailbox.Tests.Imap;

/// <summary>The IMAP grammar (RFC 9051 §9): what parses into what, and what is a BAD with which reason.</summary>
public sealed class ImapParserTests
{
    private static ImapCommand Parse(string text)
    {
        Assert.True(ImapParser.TryParse(Encoding.UTF8.GetBytes(text + "\r\n"), out var command, out _, out var error), error);
        return command!;
    }

    private static (string? Tag, string Error) Bad(string text)
    {
        Assert.False(ImapParser.TryParse(Encoding.UTF8.GetBytes(text + "\r\n"), out _, out var tag, out var error));
        return (tag, error);
    }

    [Fact]
    public void LOGIN_with_atoms_quoted_strings_and_literals()
    {
        var c = Parse("a1 login \"alice@test.example\" {5}\r\np\"w\\d");
        Assert.Equal(("a1", "LOGIN"), (c.Tag, c.Name));
        Assert.Equal(["alice@test.example", "p\"w\\d"], c.Arguments);
        Assert.Equal(["bob", "a\"b"], Parse("a2 LOGIN bob \"a\\\"b\"").Arguments);
    }

    [Fact]
    public void FETCH_items_macros_sections_and_partials()
    {
        var c = Parse("a1 UID FETCH 1:*,7 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (Subject From)]<10.20> BODY[] RFC822.SIZE BODY[2.MIME] BODY)");
        Assert.True(c.Uid);
        Assert.Equal("1:*,7", c.Sequence!.ToString());
        var items = c.FetchItems!;
        Assert.Equal(FetchKind.Flags, items[0].Kind);
        var section = items[1];
        Assert.True(section.Peek);
        Assert.Equal([1, 2], section.Part);
        Assert.Equal(SectionText.HeaderFields, section.Text);
        Assert.Equal(["Subject", "From"], section.Fields);
        Assert.Equal((10L, 20L), (section.PartialStart!.Value, section.PartialLength!.Value));
        Assert.Equal("BODY[1.2.HEADER.FIELDS (SUBJECT FROM)]<10>", section.ResponseName);
        Assert.Equal("BODY[]", items[2].ResponseName);
        Assert.False(items[2].Peek);
        Assert.Equal(SectionText.Mime, items[4].Text);
        Assert.Equal(FetchKind.Body, items[5].Kind);
        Assert.Equal(4, Parse("a2 FETCH 1 ALL").FetchItems!.Count);
        Assert.Equal(FetchKind.Envelope, Parse("a3 fetch 2 envelope").FetchItems![0].Kind);
    }

    [Theory]
    [InlineData("a1 FETCH 0 FLAGS", "Bad sequence set")]
    [InlineData("a1 FETCH 1 (FLAGS", "Expected ')'")]
    [InlineData("a1 FETCH 1 BODY[0]", "Bad section")]
    [InlineData("a1 FETCH 1 BODY[MIME]", "Bad section")]
    [InlineData("a1 FETCH 1 BODY[]<5.0>", "Partial length must be positive")]
    [InlineData("a1 FROB", "Unknown command")]
    [InlineData("a1 NOOP x", "Unexpected extra arguments")]
    [InlineData("a1 LOGIN x", "Expected ' '")]
    [InlineData("a1 LOGIN {9}\r\nab", "Literal shorter than announced")]
    [InlineData("a1 STORE 1 FLAGS (\\Bogus)", "Unknown system flag")]
    [InlineData("a1 SEARCH FROBBED", "Unknown search key")]
    [InlineData("a1 UID LOGIN x y", "Unknown UID command")]
    public void Syntax_errors_name_the_problem(string text, string error)
    {
        var (tag, reason) = Bad(text);
        Assert.Equal("a1", tag);
        Assert.Equal(error, reason);
    }

    [Fact]
    public void Missing_tag_is_untagged_BAD() => Assert.Null(Bad(" NOOP").Tag);

    [Fact]
    public void SEARCH_programs_with_RETURN_CHARSET_OR_NOT_and_sets()
    {
        var c = Parse("a1 UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR SEEN (FROM \"bob\" SINCE 1-Dec-2026) NOT DELETED 1:3 UID 5:*");
        var program = c.Search!;
        Assert.Equal(["MIN", "COUNT"], program.Return);
        Assert.Equal("UTF-8", program.Charset);
        var and = program.Criteria;
        Assert.Equal(SearchKind.And, and.Kind);
        Assert.Equal([SearchKind.Or, SearchKind.Not, SearchKind.SequenceSet, SearchKind.Uid], and.Children.Select(k => k.Kind));
        var or = and.Children[0];
        Assert.Equal("\\Seen", or.Children[0].Flag);
        Assert.Equal(SearchKind.And, or.Children[1].Kind);
        Assert.Equal(new DateOnly(2026, 12, 1), or.Children[1].Children[1].Date);
        Assert.Equal("\\Deleted", and.Children[1].Children[0].Flag);
    }

    [Fact]
    public void Deeply_nested_search_is_refused() =>
        Assert.Equal("Search program nested too deeply", Bad("a1 SEARCH " + string.Concat(Enumerable.Repeat("NOT ", 40)) + "ALL").Error);

    [Fact]
    public void STORE_modes_and_silent()
    {
        var c = Parse("a1 STORE 2:4 -FLAGS.SILENT (\\Seen $Label1)");
        Assert.Equal((StoreMode.Remove, true), (c.Store!.Mode, c.Store.Silent));
        Assert.Equal(["\\Seen", "$Label1"], c.Store.Flags);
        Assert.Equal(["\\Seen", "\\Flagged"], Parse("a2 STORE 1 +FLAGS \\seen \\FLAGGED").Store!.Flags);
    }

    [Fact]
    public void APPEND_with_flags_date_and_MULTIAPPEND_literals()
    {
        var c = Parse("a1 APPEND Sent (\\Seen) \" 2-Dec-2026 03:46:27 +0100\" {3+}\r\nabc {2+}\r\nde");
        Assert.Equal("Sent", c.Mailbox);
        Assert.Equal(2, c.Appends.Count);
        Assert.Equal(["\\Seen"], c.Appends[0].Flags);
        Assert.Equal(new DateTimeOffset(2026, 12, 2, 3, 46, 27, TimeSpan.FromHours(1)), c.Appends[0].InternalDate);
        Assert.Equal("abc", Encoding.ASCII.GetString(c.Appends[0].Inline.Span));
        Assert.Equal("de", Encoding.ASCII.GetString(c.Appends[1].Inline.Span));

        // A streamed literal is a marker; its index counts the markers before it.
        var streamed = Parse("a2 APPEND INBOX \0 \0");
        Assert.Equal([0, 1], streamed.Appends.Select(a => a.StreamedIndex));
    }

    [Fact]
    public void LIST_LSUB_extended_forms_and_INBOX_case()
    {
        var c = Parse("a1 LIST (SPECIAL-USE) \"\" (\"*\" %/x) RETURN (SUBSCRIBED CHILDREN)");
        Assert.Equal(["", "*", "%/x"], c.Arguments);
        Assert.Equal(["SPECIAL-USE", "RETURN:SUBSCRIBED", "RETURN:CHILDREN"], c.ListOptions);
        Assert.Equal(["", "*"], Parse("a2 LSUB \"\" *").Arguments);
        Assert.Equal("INBOX", Parse("a3 SELECT inbox").Mailbox);
        Assert.Equal("Jörg", Parse("a4 CREATE \"Jörg\"").Mailbox);
        Assert.Equal(["MESSAGES", "UIDNEXT"], Parse("a5 STATUS INBOX (messages uidnext)").Arguments);
    }

    [Fact]
    public void AUTHENTICATE_with_and_without_initial_response()
    {
        Assert.Equal(["PLAIN", "AGFsaWNlAHB3"], Parse("a1 AUTHENTICATE plain AGFsaWNlAHB3").Arguments);
        Assert.Equal(["PLAIN", null], Parse("a2 AUTHENTICATE PLAIN").Arguments);
        Assert.Equal(["PLAIN", "="], Parse("a3 AUTHENTICATE PLAIN =").Arguments);
    }

    [Fact]
    public void ID_ENABLE_and_IDLE()
    {
        Assert.Equal(["name", "MailKit", "version", null], Parse("a1 ID (\"name\" \"MailKit\" \"version\" NIL)").Arguments);
        Assert.Empty(Parse("a2 ID NIL").Arguments);
        Assert.Equal(["IMAP4REV2", "UTF8=ACCEPT"], Parse("a3 ENABLE IMAP4rev2 UTF8=ACCEPT").Arguments);
        Assert.Equal("IDLE", Parse("a4 IDLE").Name);
    }
}
