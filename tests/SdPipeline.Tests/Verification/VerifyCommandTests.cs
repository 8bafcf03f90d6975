using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Models;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Verification;

/// <summary><c>sdpipe verify</c> as a user runs it: a process, its table and its exit code.</summary>
public sealed class VerifyCommandTests
{
    private static string TinySd => TinySdFolder.Source;

    [Test]
    public void Verify_Should_PrintAnAllPassTableAndExit0_When_ModelMatchesTheFixtures()
    {
        using var temp = new TempFolder();

        var result = CliRunner.Sdpipe(temp.Path, null, "verify", "--model", TinySd, "--parity", ParityFolders.Source, "--json", temp.File("rows.json"));

        TestContext.Out.WriteLine(result.Output);
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Output, Does.Contain("check").And.Contain("max abs").And.Contain("max rel").And.Contain("tolerance"));
        foreach (string check in new[] { "text_encoder.last_hidden_state", "unet.out", "vae.decode", "schedulers.pndm_epsilon_50", "pipeline.latents", "train_step_epsilon.step1.param_after" })
            Assert.That(result.Output, Does.Match($@"(?m)^{Regex(check)}\s.*\sok\s"), check);
        Assert.That(result.Output, Does.Not.Contain("FAIL"));
        var rows = JArray.Parse(File.ReadAllText(temp.File("rows.json")));
        Assert.That(rows.Select(r => r.Value<bool>("passed")), Is.All.True);
        Assert.That(result.Output, Does.Contain($"{rows.Count} checks: {rows.Count} passed"));
    }

    [Test]
    public void Verify_Should_Exit1AndMarkTheRow_When_AUNetWeightIsChanged()
    {
        using var temp = new TempFolder();
        var model = TinySdFolder.CopyTo(Directory.CreateDirectory(temp.File("model")).FullName, "unet");
        TinySdFolder.EditWeights(model.Root, "unet", weights => weights["up_blocks.0.resnets.1.conv2.weight"].mul_(1.01));
        string parity = ParityFolders.CopyTo(temp.File("parity"), "unet");

        var result = CliRunner.Sdpipe(temp.Path, null, "verify", "--model", model.Root, "--parity", parity);

        Assert.That(result.ExitCode, Is.EqualTo(1), result.All);
        Assert.That(result.Output, Does.Match(@"(?m)^unet\.out\s.*\sFAIL\s"));
        Assert.That(result.Output, Does.Contain("FAILED"));
    }

    [Test]
    public void Verify_Should_Exit2_When_TheModelFolderDoesNotExist()
    {
        using var temp = new TempFolder();

        var result = CliRunner.Sdpipe(temp.Path, null, "verify", "--model", temp.File("nowhere"), "--parity", ParityFolders.Source);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("--model").And.Contain("nowhere"));
    }

    [Test]
    public void Verify_Should_Exit2_When_ParityIsNotGiven()
    {
        using var temp = new TempFolder();

        var result = CliRunner.Sdpipe(temp.Path, null, "verify", "--model", TinySd);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("--parity"));
    }

    private static string Regex(string text) => System.Text.RegularExpressions.Regex.Escape(text);
}
