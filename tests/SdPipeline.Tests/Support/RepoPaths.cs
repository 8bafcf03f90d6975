namespace SdPipeline.Tests.Support;

/// <summary>Where the repository, the CLI and the shared fixtures are, seen from the test host.</summary>
public static class RepoPaths
{
    /// <summary>The repository root (the folder holding SdPipeline.sln).</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The sdpipe CLI next to the test assembly (the test project references it).</summary>
    public static string CliDll => Path.Combine(AppContext.BaseDirectory, "sdpipe.dll");

    /// <summary>
    /// <c>../shared/fixtures</c> beside the repository. Tests that need it fail (never skip) when it is
    /// missing: CI always has it, and a silent skip would hide a broken checkout.
    /// </summary>
    public static string Fixtures
    {
        get
        {
            string path = Path.GetFullPath(Path.Combine(Root, "..", "shared", "fixtures"));
            if (!Directory.Exists(path))
                Assert.Fail($"the shared fixtures are missing: expected {path} (CI clones shared/ beside the repository)");
            return path;
        }
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SdPipeline.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"SdPipeline.sln not found above {AppContext.BaseDirectory}");
    }
}
