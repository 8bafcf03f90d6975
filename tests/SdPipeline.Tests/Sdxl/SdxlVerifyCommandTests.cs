using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;

namespace SdPipeline.Tests.Sdxl;

/// <summary><c>sdpipe verify</c> over tiny-sdxl and parity-sdxl, as a user runs it.</summary>
public sealed class SdxlVerifyCommandTests
{
    [Test]
    public void Verify_Should_PassEveryCheck_When_TheSdxlModelMatchesTheFixtures()
    {
        using var temp = new TempFolder();

        var result = CliRunner.Sdpipe(temp.Path, null, "verify", "--model", TinySdxl.Folder, "--parity", TinySdxl.ParityFolder, "--json", temp.File("rows.json"));

        TestContext.Out.WriteLine(result.Output);
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        foreach (string check in new[]
                 {
                     "text_encoders.text_encoder_2", "text_encoders.prompt_embeds", "unet.out", "unet.intermediate", "pipeline.latents", "pipeline.image_uint8",
                     "pipeline_zero_negative.prompt_embeds", "pipeline_zero_negative.latents", "train_step_sdxl.step0.cached_columns", "train_step_sdxl.step1.param_after",
                 })
            Assert.That(result.Output, Does.Match($@"(?m)^{System.Text.RegularExpressions.Regex.Escape(check)}\s.*\sok\s"), check);
        var rows = JArray.Parse(File.ReadAllText(temp.File("rows.json")));
        Assert.That(rows.Select(r => r.Value<bool>("passed")), Is.All.True);
        Assert.That(rows, Has.Count.GreaterThanOrEqualTo(36));
    }

    [Test]
    public void Verify_Should_FailThePooledRows_When_TheSecondEncodersProjectionIsChanged()
    {
        // Given tiny-sdxl with text_projection scaled by 1 %
        using var temp = new TempFolder();
        string model = CopyTinySdxl(temp.File("model"));
        string weights = Path.Combine(model, "text_encoder_2", "model.safetensors");
        Dictionary<string, TorchSharp.torch.Tensor> tensors;
        using (var file = SafeTensorsFile.Open(weights)) tensors = file.ReadAll();
        tensors["text_projection.weight"].mul_(1.01);
        SafeTensorsWriter.Write(weights, tensors);
        string parity = Directory.CreateDirectory(temp.File("parity")).FullName;
        foreach (string extension in new[] { ".safetensors", ".json" })
            File.Copy(Path.Combine(TinySdxl.ParityFolder, "text_encoders" + extension), Path.Combine(parity, "text_encoders" + extension));

        // When it is verified
        var result = CliRunner.Sdpipe(temp.Path, null, "verify", "--model", model, "--parity", parity);

        // Then the rows reading the projection fail, and the hidden states (which do not) pass
        Assert.That(result.ExitCode, Is.EqualTo(1), result.All);
        Assert.That(result.Output, Does.Match(@"(?m)^text_encoders\.text_encoder_2\s.*\sFAIL\s"));
        Assert.That(result.Output, Does.Match(@"(?m)^text_encoders\.prompt_embeds\s.*\sFAIL\s"));
        Assert.That(result.Output, Does.Match(@"(?m)^text_encoders\.text_encoder\s.*\sok\s"));
    }

    private static string CopyTinySdxl(string destination)
    {
        foreach (string file in Directory.GetFiles(TinySdxl.Folder, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(destination, Path.GetRelativePath(TinySdxl.Folder, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
            File.SetAttributes(target, FileAttributes.Normal);
        }
        return destination;
    }
}
