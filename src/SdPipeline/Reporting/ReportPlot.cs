namespace SdPipeline.Reporting;

/// <summary>One rendered plot of the report.</summary>
/// <param name="Id">Stable element id in report.html (<c>plot-loss</c>, …), for links and tests.</param>
/// <param name="Title">Heading shown above the plot.</param>
/// <param name="AltText">What the plot shows, for the <c>alt</c> attribute and readers without images.</param>
/// <param name="Png">The plot as PNG.</param>
public sealed record ReportPlot(string Id, string Title, string AltText, byte[] Png);
