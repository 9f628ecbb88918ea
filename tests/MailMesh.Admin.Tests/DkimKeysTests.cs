using Bunit;
using MailMesh.Admin.Api;
using MailMesh.Admin.Components.Pages;

namespace MailMesh.Admin.Tests;

/// <summary>The DKIM keys page: each key with the TXT record to publish, in labelled read-only fields to copy.</summary>
public sealed partial class PageTests
{
    private const string RsaRecord = "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0s9Bfg7tjbaR6kq";

    [Fact]
    public void Every_key_shows_its_record_name_and_value_ready_to_copy()
    {
        LogIn(AdminRoles.Viewer);
        _api.DkimKeys.Add(new DkimKeyItem("origin.test", "s2026", "rsa-sha256", true, "s2026._domainkey.origin.test", RsaRecord,
            $"s2026._domainkey.origin.test. IN TXT ( \"{RsaRecord}\" )"));
        _api.DkimKeys.Add(new DkimKeyItem("origin.test", "s2027", "ed25519-sha256", false, "s2027._domainkey.origin.test", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "z"));

        var page = Render<DkimKeys>();

        var rows = page.FindAll("[data-testid=dkim-keys] tbody tr");
        Assert.Equal(2, rows.Count);
        Assert.Contains("signing", rows[0].TextContent, StringComparison.Ordinal);
        Assert.Contains("published only", rows[1].TextContent, StringComparison.Ordinal);
        Assert.Equal("s2026._domainkey.origin.test", page.Find("#dkim-name-0").GetAttribute("value"));
        Assert.True(page.Find("#dkim-name-0").HasAttribute("readonly"));
        var value = page.Find("#dkim-value-0");
        Assert.Equal(RsaRecord, value.TextContent);
        Assert.True(value.HasAttribute("readonly"));
        Assert.Contains("IN TXT", page.Find("pre").TextContent, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", page.Markup, StringComparison.Ordinal);
        foreach (var field in page.FindAll("textarea"))
        {
            Assert.NotNull(page.Find($"label[for='{field.GetAttribute("id")}']"));
        }

        AssertEveryFieldIsLabelled(page);
    }

    [Fact]
    public void Without_keys_the_page_says_where_they_come_from()
    {
        LogIn(AdminRoles.Viewer);
        Assert.Contains("No DKIM key is configured", Render<DkimKeys>().Markup, StringComparison.Ordinal);
    }
}
