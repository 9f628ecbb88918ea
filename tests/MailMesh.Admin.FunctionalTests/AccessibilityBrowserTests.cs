using System.Text.Json;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace MailMesh.Admin.FunctionalTests;

/// <summary>
/// Issue 12's "accessible (labels, keyboard, contrast)", checked in the browser on every page as an admin sees it: each
/// form control and button has an accessible name, each page one level-1 heading, all text meets WCAG 2.1 AA contrast
/// against the background it is drawn on; and an operator can log in, move between pages and act with the keyboard
/// alone, seeing where the focus is.
/// </summary>
public sealed partial class AdminUiBrowserTests
{
    private static readonly string[] Pages =
        ["admin", "admin/queue", "admin/messages", "admin/suppressions", "admin/webhooks", "admin/access", "admin/mailboxes", "admin/dkim", "admin/suspensions"];

    /// <summary>
    /// Runs in the page: controls without an accessible name, level-1 headings, and text below its contrast minimum
    /// (4.5:1, or 3:1 for large text: 24 px, or 18.66 px bold), each text's background being the first opaque one among
    /// its ancestors (white if none).
    /// </summary>
    private const string AuditScript =
        """
        () => {
          const visible = e => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
            return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
          const named = e => {
            if ((e.getAttribute('aria-label') || '').trim() || e.getAttribute('aria-labelledby') || (e.getAttribute('title') || '').trim()) return true;
            if (e.labels && [...e.labels].some(l => l.textContent.trim())) return true;
            if (e.tagName === 'BUTTON' || e.tagName === 'A') return e.textContent.trim().length > 0;
            if (e.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(e.type)) return (e.value || '').trim().length > 0;
            return false;
          };
          const describe = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.name ? '[name=' + e.name + ']' : '') + ' "' + (e.textContent || e.value || '').trim().slice(0, 40) + '"';
          const unnamed = [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
            .filter(visible).filter(e => !named(e)).map(describe);

          const rgb = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
            const p = m[1].split(',').map(x => parseFloat(x)); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
          const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
            return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
          const background = e => { for (let n = e; n && n.nodeType === 1; n = n.parentElement) {
              const c = rgb(getComputedStyle(n).backgroundColor); if (c && c.a >= 0.99) return c; }
            return { r: 255, g: 255, b: 255, a: 1 }; };
          const low = [];
          for (const e of document.querySelectorAll('body *')) {
            if (![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
            if (!visible(e)) continue;
            const s = getComputedStyle(e);
            const fg = rgb(s.color); if (!fg) continue;
            const bg = background(e);
            const a = fg.a; const mixed = { r: fg.r * a + bg.r * (1 - a), g: fg.g * a + bg.g * (1 - a), b: fg.b * a + bg.b * (1 - a) };
            const [l1, l2] = [lum(mixed), lum(bg)].sort((x, y) => y - x);
            const ratio = (l1 + 0.05) / (l2 + 0.05);
            const size = parseFloat(s.fontSize); const bold = parseInt(s.fontWeight, 10) >= 700;
            const min = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
            if (ratio < min) low.push(describe(e) + ' ' + ratio.toFixed(2) + ':1 (' + s.color + ' on ' + JSON.stringify(bg) + ')');
          }
          return JSON.stringify({ lang: document.documentElement.lang, h1: document.querySelectorAll('h1').length, unnamed, low });
        }
        """;

    [Fact]
    public async Task Every_page_names_its_controls_has_one_heading_and_meets_wcag_aa_contrast()
    {
        var page = await LogInAsync(AdminUiHost.Admin);
        var problems = new List<string>();
        foreach (var path in Pages.Append("admin/login"))
        {
            if (path == "admin/login")
            {
                page = await _host.NewPageAsync();
            }

            await page.GotoAsync(path);
            await Expect(page.Locator("h1")).ToBeVisibleAsync();
            using var audit = JsonDocument.Parse(await page.EvaluateAsync<string>(AuditScript));
            var root = audit.RootElement;
            if (root.GetProperty("lang").GetString() is not { Length: > 0 })
            {
                problems.Add($"{path}: <html> has no lang");
            }

            if (root.GetProperty("h1").GetInt32() != 1)
            {
                problems.Add($"{path}: {root.GetProperty("h1").GetInt32()} level-1 headings");
            }

            problems.AddRange(root.GetProperty("unnamed").EnumerateArray().Select(e => $"{path}: no accessible name: {e.GetString()}"));
            problems.AddRange(root.GetProperty("low").EnumerateArray().Select(e => $"{path}: contrast below AA: {e.GetString()}"));
        }

        Assert.True(problems.Count == 0, string.Join('\n', problems));

        // The audit itself sees what it looks for: faint text and a control with no name, added to the last page.
        await page.EvaluateAsync(
            "() => { const p = document.createElement('p'); p.textContent = 'faint'; p.style.color = '#bbbbbb'; document.body.appendChild(p);" +
            " const i = document.createElement('input'); i.id = 'nameless'; document.body.appendChild(i); }");
        using var seeded = JsonDocument.Parse(await page.EvaluateAsync<string>(AuditScript));
        Assert.Contains(seeded.RootElement.GetProperty("low").EnumerateArray(), e => e.GetString()!.StartsWith("p \"faint\"", StringComparison.Ordinal));
        Assert.Contains(seeded.RootElement.GetProperty("unnamed").EnumerateArray(), e => e.GetString()!.StartsWith("input#nameless", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_operator_logs_in_moves_between_pages_and_adds_a_suppression_with_the_keyboard_alone()
    {
        var page = await _host.NewPageAsync();
        await page.GotoAsync("admin/login");

        // The name field has the focus on arrival; Tab moves to the password, Enter submits.
        await Expect(page.GetByLabel("Name", new() { Exact = true })).ToBeFocusedAsync();
        await page.Keyboard.TypeAsync(AdminUiHost.Operator);
        await page.Keyboard.PressAsync("Tab");
        await Expect(page.GetByLabel("Password", new() { Exact = true })).ToBeFocusedAsync();
        await page.Keyboard.TypeAsync(AdminUiHost.Password);
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("header .who")).ToContainTextAsync(AdminUiHost.Operator);

        // The first Tab reaches the skip link, which is then on screen; following it puts the focus in the main content.
        await page.Keyboard.PressAsync("Tab");
        var skip = page.Locator("a.skip");
        await Expect(skip).ToBeFocusedAsync();
        Assert.True((await skip.BoundingBoxAsync())?.X >= 0, "the focused skip link is off screen");

        // Tab through the navigation to Suppressions, with the focus visible on every stop.
        await TabToAsync(page, page.GetByRole(AriaRole.Link, new() { Name = "Suppressions", Exact = true }));
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Suppressions", Level = 1 })).ToBeVisibleAsync();

        const string address = "keyboard-only@blocked.test";
        await TabToAsync(page, page.GetByLabel("Address", new() { Exact = true }));
        await page.Keyboard.TypeAsync(address);
        await TabToAsync(page, page.GetByRole(AriaRole.Button, new() { Name = "Suppress", Exact = true }));
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.GetByRole(AriaRole.Status)).ToContainTextAsync(address);
        await ScreenshotAsync(page, "keyboard-suppression");
    }

    /// <summary>Presses Tab until <paramref name="target"/> has the focus (at most 60 times), checking each stop shows it.</summary>
    private static async Task TabToAsync(IPage page, ILocator target)
    {
        for (var i = 0; i < 60; i++)
        {
            await page.Keyboard.PressAsync("Tab");
            var outline = await page.EvaluateAsync<string>(
                "() => { const e = document.activeElement; const s = getComputedStyle(e); return e.tagName + ' ' + s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.boxShadow; }");
            Assert.False(outline.EndsWith(" none 0px none", StringComparison.Ordinal), $"the focus is not visible on {outline}");
            if (await target.EvaluateAsync<bool>("e => e === document.activeElement"))
            {
                return;
            }
        }

        Assert.Fail($"{target} was not reached with Tab");
    }
}
