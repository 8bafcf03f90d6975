using SdPipeline.Config;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Config;

/// <summary>The README documents the configuration as the code defines it.</summary>
public sealed class ReadmeTests
{
    [Test]
    public void Readme_Should_ContainTheGeneratedConfigurationReference()
    {
        string readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));

        // Regenerate with: sdpipe config --defaults --markdown
        foreach (string line in ConfigDocumentation.Markdown().Split('\n').Where(l => l.StartsWith("| `", StringComparison.Ordinal)))
            Assert.That(readme, Does.Contain(line), "README.md's configuration tables are out of date; paste `sdpipe config --defaults --markdown`");
    }
}
