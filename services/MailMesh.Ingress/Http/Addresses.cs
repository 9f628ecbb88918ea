using System.Text;
using MailMesh.Smtp;
using MimeKit;

namespace MailMesh.Ingress.Http;

/// <summary>An address as it appears in a header (with its display name) and as the envelope carries it.</summary>
internal readonly record struct ParsedAddress(MailboxAddress Header, Mailbox Envelope);

/// <summary>
/// Address validation of the HTTP API. Header syntax (RFC 5322 §3.4: "Name &lt;local@domain&gt;" or a bare addr-spec) is
/// parsed by MimeKit; the addr-spec must then be a valid RFC 5321 §4.1.2 Mailbox, checked by the same parser the SMTP
/// listener uses, so HTTP and SMTP accept exactly the same addresses.
/// </summary>
internal static class Addresses
{
    private static readonly ParserOptions Strict = new()
    {
        AddressParserComplianceMode = RfcComplianceMode.Strict,
        AllowAddressesWithoutDomain = false,
    };

    /// <summary>One mailbox, with or without a display name.</summary>
    public static bool TryParseMailbox(string text, out ParsedAddress address, out string error)
    {
        address = default;
        if (!MailboxAddress.TryParse(Strict, text, out var header))
        {
            error = $"'{Shorten(text)}' is not an email address (RFC 5322 §3.4: \"Name <local@domain>\" or \"local@domain\")";
            return false;
        }

        return TryValidate(header, text, out address, out error);
    }

    /// <summary>A comma-separated address list (RFC 5322 §3.4 address-list); groups contribute their members.</summary>
    public static bool TryParseList(string text, List<ParsedAddress> into, out string error)
    {
        if (!InternetAddressList.TryParse(Strict, text, out var list))
        {
            error = $"'{Shorten(text)}' is not a list of email addresses (RFC 5322 §3.4)";
            return false;
        }

        foreach (var mailbox in list.Mailboxes)
        {
            if (!TryValidate(mailbox, mailbox.ToString(), out var address, out error))
            {
                return false;
            }

            into.Add(address);
        }

        error = string.Empty;
        return true;
    }

    private static bool TryValidate(MailboxAddress header, string text, out ParsedAddress address, out string error)
    {
        address = default;

        // An internationalised domain is carried as its A-label (RFC 5890); a non-ASCII local part needs SMTPUTF8.
        string addrSpec;
        try
        {
            addrSpec = NormalizedAddress.WithAsciiDomain(header.GetAddress(idnEncode: false));
        }
        catch (ArgumentException)
        {
            error = $"'{Shorten(text)}' has a domain that is not a valid internationalised domain name (RFC 5890)";
            return false;
        }

        if (!Ascii.IsValid(addrSpec))
        {
            error = $"'{Shorten(text)}' has a non-ASCII local part, which needs SMTPUTF8 (RFC 6531); MailMesh does not offer it yet";
            return false;
        }

        var bytes = Encoding.ASCII.GetBytes(addrSpec);
        switch (MailboxParser.ParseMailbox(bytes, out var mailbox))
        {
            case PathError.None:
                address = new ParsedAddress(header, mailbox!);
                error = string.Empty;
                return true;
            case PathError.TooLong:
                error = $"'{Shorten(text)}' is too long: a local part has at most {Mailbox.MaxLocalPartLength} octets and a domain at most {Mailbox.MaxDomainLength} (RFC 5321 §4.5.3.1)";
                return false;
            default:
                error = $"'{Shorten(text)}' is not a deliverable address: '{Shorten(addrSpec)}' is not local-part@domain (RFC 5321 §4.1.2)";
                return false;
        }
    }

    /// <summary>Echoed values are cut short so a problem document never repeats a huge input.</summary>
    public static string Shorten(string value) => value.Length <= 100 ? value : value[..100] + "…";
}
