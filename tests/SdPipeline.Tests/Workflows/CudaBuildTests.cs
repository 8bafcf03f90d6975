using System.Text.RegularExpressions;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Workflows;

/// <summary>
/// The GPU workflows build with <c>--torch-backend=cuda</c>. TorchSharp-cuda-linux cannot be restored here, so
/// these tests check the part that can go wrong before a runner ever restores it: that the property selects
/// the CUDA package (MSBuild evaluation only, no restore), and that Cake hands it to every build.
/// </summary>
public sealed class CudaBuildTests
{
    private static string Project => Path.Combine(RepoPaths.Root, "src", "SdPipeline", "SdPipeline.csproj");

    private static ProcessResult Msbuild(params string[] arguments) =>
        CliRunner.Run("dotnet", ["msbuild", Project, .. arguments], RepoPaths.Root, new Dictionary<string, string> { ["TorchBackend"] = "" }, TimeSpan.FromMinutes(2));

    private static List<string> PackageReferences(string output) =>
        Regex.Matches(output, @"""Identity"":\s*""([^""]+)""").Select(m => m.Groups[1].Value).ToList();

    [Test]
    public void TorchBackendCuda_Should_SelectTheCudaPackage_WithoutRestoring()
    {
        var property = Msbuild("-getProperty:TorchBackend", "-p:TorchBackend=cuda");
        var items = Msbuild("-getItem:PackageReference", "-p:TorchBackend=cuda");

        Assert.That(property.ExitCode, Is.EqualTo(0), property.All);
        Assert.That(property.Output.Trim(), Is.EqualTo("cuda"));
        Assert.That(items.ExitCode, Is.EqualTo(0), items.All);
        Assert.That(PackageReferences(items.Output), Does.Contain("TorchSharp-cuda-linux").And.No.Contain("TorchSharp-cpu"));
    }

    [Test]
    public void TorchBackend_Should_DefaultToCpu()
    {
        var property = Msbuild("-getProperty:TorchBackend");
        var items = Msbuild("-getItem:PackageReference");

        Assert.That(property.Output.Trim(), Is.EqualTo("cpu"), property.All);
        Assert.That(PackageReferences(items.Output), Does.Contain("TorchSharp-cpu").And.No.Contain("TorchSharp-cuda-linux"));
    }

    [Test]
    public void CudaPackage_Should_HaveACentralVersion()
    {
        var versions = Msbuild("-getItem:PackageVersion", "-p:TorchBackend=cuda");

        Assert.That(PackageReferences(versions.Output), Does.Contain("TorchSharp-cuda-linux"), "Directory.Packages.props pins it");
    }

    [Test]
    public void UnknownTorchBackend_Should_FailNamingTheSupportedOnes()
    {
        var result = Msbuild("-t:ValidateTorchBackend", "-p:TorchBackend=rocm");

        Assert.That(result.ExitCode, Is.Not.EqualTo(0));
        Assert.That(result.Output, Does.Contain("TorchBackend='rocm' is not supported").And.Contain("-p:TorchBackend=cuda"));
    }

    [Test]
    public void CakeScript_Should_PassTheTorchBackendToEveryBuildAndTest()
    {
        string script = File.ReadAllText(Path.Combine(RepoPaths.Root, "build", "build.cake"));
        string data = File.ReadAllText(Path.Combine(RepoPaths.Root, "build", "build-data.cake"));

        // Every DotNetBuild/DotNetTest call carries the MSBuild settings that hold -p:TorchBackend
        var calls = Regex.Matches(script, @"DotNet(Build|Test|Publish|Run)\((?<body>.*?)\)\);", RegexOptions.Singleline);
        Assert.That(calls, Has.Count.GreaterThanOrEqualTo(3));
        foreach (Match call in calls)
            Assert.That(call.Groups["body"].Value, Does.Contain("MSBuildSettings = data.MSBuild"), call.Value);
        Assert.That(data, Does.Contain("context.Argument(\"torch-backend\"").And.Contain("WithProperty(\"TorchBackend\", torchBackend)"));
    }

    [Test, Category("Slow")]
    public void CakeScript_Should_RejectAnUnknownTorchBackend_BeforeBuilding()
    {
        var result = CliRunner.Run(Path.Combine(RepoPaths.Root, "build.sh"), ["--target=BuildCli", "--torch-backend=rocm"], RepoPaths.Root, null, TimeSpan.FromMinutes(5));

        Assert.That(result.ExitCode, Is.Not.EqualTo(0));
        Assert.That(result.All, Does.Contain("--torch-backend=rocm is not supported"));
        Assert.That(result.All, Does.Not.Contain("Executing task: BuildCli"));
    }
}
