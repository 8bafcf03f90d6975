using Microsoft.Playwright;
using SdPipeline.Reporting;

namespace SdPipeline.Tests.Reporting;

/// <summary>
/// Opens report.html in a real browser: Debian's Chromium driven by Playwright (its own browser download
/// does not work offline, so the Test target installs the <c>chromium</c> package (<c>.ci/test-prerequisites.sh</c>) and this test points
/// Playwright at it). The test fails, never skips, when the browser is missing.
/// </summary>
[NonParallelizable]
public sealed class ReportBrowserTests
{
    /// <summary>Overrides the browser path (for machines whose Chromium lives elsewhere).</summary>
    private const string BrowserVariable = "SDPIPE_CHROMIUM";

    private static string BrowserPath => Environment.GetEnvironmentVariable(BrowserVariable) is { Length: > 0 } path ? path : "/usr/bin/chromium";

    [Test]
    [CancelAfter(120_000)]
    public async Task ReportHtml_Should_ShowEveryImageAndPlot_Without_ConsoleErrorsOrRequests()
    {
        // Given a report written from synthetic input, in a folder kept for inspection
        string browser = BrowserPath;
        Assert.That(File.Exists(browser), Is.True,
            $"Chromium is missing at {browser}: run `sudo apt-get install -y chromium` (./build.sh --target=Test installs it first when it can), or set {BrowserVariable} to another Chromium");
        string folder = Path.Combine(TestContext.CurrentContext.WorkDirectory, "report-browser-test");
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        var facts = ReportWriter.Write(ReportTestData.Full(), folder);
        string html = Path.Combine(folder, ReportWriter.HtmlFileName);

        // When Chromium opens it
        using var playwright = await Playwright.CreateAsync();
        await using var chromium = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = browser,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        var page = await chromium.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        var errors = new List<string>();
        var requests = new List<string>();
        page.Console += (_, message) => { if (message.Type == "error") lock (errors) errors.Add($"console: {message.Text}"); };
        page.PageError += (_, error) => { lock (errors) errors.Add($"page error: {error}"); };
        page.RequestFailed += (_, request) => { lock (errors) errors.Add($"request failed: {request.Url} ({request.Failure})"); };
        page.Request += (_, request) => { lock (requests) requests.Add(request.Url); };
        var response = await page.GotoAsync(new Uri(html).AbsoluteUri, new PageGotoOptions { WaitUntil = WaitUntilState.Load });
        var images = await page.EvaluateAsync<ImageState[]>(
            "() => Array.from(document.images, i => ({ id: i.closest('[id]')?.id ?? '', alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth }))");
        var plotIds = await page.EvaluateAsync<string[]>("() => Array.from(document.querySelectorAll('figure.plot'), f => f.id)");
        var gridLabels = await page.EvaluateAsync<string[]>("() => Array.from(document.querySelectorAll('table.grid th'), th => th.textContent)");
        string screenshot = Path.Combine(folder, "report-screenshot.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        TestContext.AddTestAttachment(screenshot, "report.html in headless Chromium");

        // Then every image decoded, every plot is there, and the page neither complained nor fetched anything
        Assert.Multiple(() =>
        {
            Assert.That(response?.Ok, Is.True, "report.html did not load");
            Assert.That(images, Has.Length.EqualTo(ReportPlots.AllIds.Count + 2 * facts.Input.Samples.Count));
            foreach (var image in images)
                Assert.That(image.Complete && image.NaturalWidth > 0, Is.True, $"image in #{image.Id} did not decode: {image.Alt}");
            Assert.That(plotIds, Is.EqualTo(ReportPlots.AllIds));
            Assert.That(gridLabels, Is.EqualTo(Enumerable.Repeat(new[] { "base", "fine-tuned" }, facts.Input.Samples.Count).SelectMany(x => x)));
            Assert.That(errors, Is.Empty);
            Assert.That(requests, Is.All.StartsWith("file:").Or.StartsWith("data:"), "the report fetched something");
            Assert.That(new FileInfo(screenshot).Length, Is.GreaterThan(0));
        });
    }

    /// <summary>What the page says about one image (Playwright fills it by property name).</summary>
    private sealed class ImageState
    {
        public string Id { get; set; } = "";
        public string Alt { get; set; } = "";
        public bool Complete { get; set; }
        public int NaturalWidth { get; set; }
    }
}
