using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Models;
using SdPipeline.Tests.Support;
using SdPipeline.Verification;
using SdPipeline.Weights;
using TorchSharp;

namespace SdPipeline.Tests.Verification;

/// <summary>
/// The verifier on the shared fixtures (the end-to-end parity test of every model, scheduler, the pipeline and the
/// training step), and on folders it must flag: a changed weight, fixtures it cannot interpret, a missing component.
/// </summary>
public sealed class ParityVerifierTests
{
    private static DiffusersFolder TinySd => DiffusersFolder.Open(TinySdFolder.Source);

    private static string TokenizationFile => Path.Combine(RepoPaths.Fixtures, "clip-tokenizer", "tokenization.jsonl");

    [Test]
    public void Run_Should_PassEveryRow_When_ModelIsTheOneTheFixturesCameFrom()
    {
        // Given the tiny model, every parity fixture and the tokenizer lines
        var verifier = new ParityVerifier(TinySd, ParityFolders.Source, TokenizationFile);

        // When everything is checked
        var rows = verifier.Run();

        // Then every check of every fixture ran and passed
        TestContext.Out.WriteLine(string.Join("\n", ParityTable.Header().Concat(rows.Select(ParityTable.Line))));
        Assert.That(rows.Where(r => !r.Passed).Select(ParityTable.Line), Is.Empty);
        var checks = rows.Select(r => r.Check).ToList();
        Assert.That(checks, Is.SupersetOf(new[]
        {
            "tokenization", "text_encoder.last_hidden_state", "unet.out", "vae.encode", "vae.decode", "schedulers.ddim_epsilon_50",
            "schedulers.ddim_single", "rng.gen1234", "pipeline.latents", "pipeline.image_uint8", "train_step_epsilon.step1.param_after",
            "train_step_vpred_snr5.step1.grad", "train_step_epsilon_all_grads_step0.grad",
        }));
        Assert.That(rows.Single(r => r.Check == "tokenization").Note, Does.StartWith("0 of 300 lines differ"));
    }

    [Test]
    public void Run_Should_FailTheUNetRow_When_OneUNetWeightIsChanged()
    {
        // Given a copy of the tiny UNet with one mid-block weight nudged, and the UNet fixture
        using var temp = new TempFolder();
        var model = TinySdFolder.CopyTo(Directory.CreateDirectory(temp.File("model")).FullName, "unet");
        TinySdFolder.EditWeights(model.Root, "unet", weights => weights["mid_block.resnets.0.conv1.weight"].add_(0.01));
        string parity = ParityFolders.CopyTo(temp.File("parity"), "unet");

        // When it is verified
        var rows = new ParityVerifier(model, parity).Run();

        // Then the outputs fail with their error and where it is largest, while the stem (before the change) passes
        var output = rows.Single(r => r.Check == "unet.out");
        TestContext.Out.WriteLine(ParityTable.Line(output));
        Assert.That(output.Passed, Is.False);
        Assert.That(output.MaxAbsError, Is.GreaterThan(1e-3));
        Assert.That(output.Note, Does.Contain("failed: out").And.Contain("largest difference at ["));
        Assert.That(rows.Single(r => r.Check == "unet.intermediate").Passed, Is.True);
    }

    [Test]
    public void Run_Should_AddACannotInterpretRow_When_AFixtureHasAnUnknownName()
    {
        // Given a parity folder with the VAE fixture and the same pair renamed foo
        using var temp = new TempFolder();
        string parity = ParityFolders.CopyTo(temp.Path, "vae");
        File.Copy(Path.Combine(parity, "vae.safetensors"), Path.Combine(parity, "foo.safetensors"));
        File.Copy(Path.Combine(parity, "vae.json"), Path.Combine(parity, "foo.json"));

        // When it is verified
        var rows = new ParityVerifier(TinySd, parity).Run();

        // Then foo is a failed row saying why, and the VAE is still checked
        var foo = rows.Single(r => r.Check == "foo");
        Assert.That(foo.Passed, Is.False);
        Assert.That(foo.Note, Does.StartWith("cannot interpret: no check for a fixture named 'foo'"));
        Assert.That(rows.Where(r => r.Check.StartsWith("vae.", StringComparison.Ordinal)).Select(r => r.Passed), Is.EqualTo(new[] { true, true }));
    }

    [Test]
    public void Run_Should_AddACannotInterpretRow_When_TheSidecarIsMissing()
    {
        using var temp = new TempFolder();
        File.Copy(Path.Combine(ParityFolders.Source, "vae.safetensors"), temp.File("vae.safetensors"));

        var rows = new ParityVerifier(TinySd, temp.Path).Run();

        Assert.That(rows, Has.Count.EqualTo(1));
        Assert.That(rows[0], Is.EqualTo(ParityRow.CannotInterpret("vae", "no sidecar vae.json beside vae.safetensors")));
    }

    [Test]
    public void Run_Should_FailOnlyTheRowThatNeedsIt_When_ATensorIsMissing()
    {
        // Given the UNet fixture without its 'out' tensor (file and sidecar agree)
        using var temp = new TempFolder();
        WithoutTensor("unet", "out", temp.Path);

        // When it is verified
        var rows = new ParityVerifier(TinySd, temp.Path).Run();

        // Then the row comparing 'out' cannot be interpreted, and the 0-d timestep row still passes
        Assert.That(rows.Single(r => r.Check == "unet.out").Note, Is.EqualTo("cannot interpret: unet.safetensors has no tensor 'out'"));
        Assert.That(rows.Single(r => r.Check == "unet.out_timestep_scalar").Passed, Is.True);
    }

    [Test]
    public void Run_Should_AddACannotInterpretRow_When_SidecarAndFileDisagreeOnAShape()
    {
        using var temp = new TempFolder();
        string parity = ParityFolders.CopyTo(temp.Path, "vae");
        var sidecar = JObject.Parse(File.ReadAllText(Path.Combine(parity, "vae.json")));
        sidecar["tensors"]!["mean"]!["shape"] = new JArray(1, 4, 16, 16);
        File.WriteAllText(Path.Combine(parity, "vae.json"), sidecar.ToString());

        var rows = new ParityVerifier(TinySd, parity).Run();

        Assert.That(rows.Single().Note, Is.EqualTo("cannot interpret: 'mean' has shape [1, 4, 32, 32] in vae.safetensors but [1, 4, 16, 16] in vae.json"));
    }

    [Test]
    public void Run_Should_NameTheMissingFolder_When_TheModelLacksAComponent()
    {
        // Given a model folder without vae/
        using var temp = new TempFolder();
        var model = TinySdFolder.CopyTo(Directory.CreateDirectory(temp.File("model")).FullName, "unet");
        string parity = ParityFolders.CopyTo(temp.File("parity"), "vae");

        var rows = new ParityVerifier(model, parity).Run();

        Assert.That(rows.Select(r => r.Passed), Is.All.False);
        Assert.That(rows.Select(r => r.Note), Is.All.EqualTo($"the model has no vae/ folder ({Path.Combine(model.Root, "vae")})"));
    }

    [Test]
    public void Run_Should_CountTheLinesThatDiffer_When_TokenizationFileHasAWrongId()
    {
        // Given two reference lines, the second one altered
        using var temp = new TempFolder();
        var lines = File.ReadLines(TokenizationFile).Take(2).ToList();
        var altered = JObject.Parse(lines[1]);
        altered["ids"]![3] = 1234;
        File.WriteAllLines(temp.File("tokenization.jsonl"), [lines[0], altered.ToString(Newtonsoft.Json.Formatting.None)]);

        // When the folder holding it is verified
        var rows = new ParityVerifier(TinySd, temp.Path).Run();

        // Then one row says how many lines differ, and where the first difference is
        var row = rows.Single();
        Assert.That(row.Passed, Is.False);
        Assert.That(row.Note, Does.StartWith("1 of 2 lines differ").And.Contain("line 2").And.Contain("position 3"));
    }

    [Test]
    public void Run_Should_CheckEachReferenceWithItsTokenizer_When_FolderHoldsBothTokenizationFiles()
    {
        // Given a folder with transformers' reference (what diffusers runs) and OpenAI's, which disagree on 52 prompts
        using var temp = new TempFolder();
        foreach (string name in new[] { "tokenization.jsonl", "tokenization_transformers.jsonl" })
            File.Copy(Path.Combine(RepoPaths.Fixtures, "clip-tokenizer", name), temp.File(name));

        // When it is verified
        var rows = new ParityVerifier(TinySd, temp.Path).Run();

        // Then each file is checked with the clean-up of the tokenizer that made it, and every line matches
        Assert.That(rows.Select(r => (r.Check, r.Passed)), Is.EqualTo(new[] { ("tokenization", true), ("tokenization_transformers", true) }));
        Assert.That(rows[0].Note, Does.StartWith("0 of 300 lines differ (300 openai)"));
        Assert.That(rows[1].Note, Does.StartWith("0 of 341 lines differ (341 transformers)"));
    }

    [Test]
    public void Run_Should_FailTheStepRows_When_TheOptimizerDiffers()
    {
        // Given the epsilon training fixture whose sidecar claims a learning rate ten times larger than the one used
        using var temp = new TempFolder();
        string parity = ParityFolders.CopyTo(temp.Path, "train_step_epsilon");
        string path = Path.Combine(parity, "train_step_epsilon.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("lr=1e-4", "lr=1e-3", StringComparison.Ordinal));

        var rows = new ParityVerifier(TinySd, parity).Run();

        // Then step 0's gradients still match but the parameters after it do not, nor step 1's prediction
        Assert.That(rows.Single(r => r.Check == "train_step_epsilon.step0.grad").Passed, Is.True);
        Assert.That(rows.Single(r => r.Check == "train_step_epsilon.step0.param_after").Passed, Is.False);
        Assert.That(rows.Single(r => r.Check == "train_step_epsilon.step1.model_pred").Passed, Is.False);
    }

    // Writes FIXTURE.safetensors and FIXTURE.json into folder without one tensor.
    private static void WithoutTensor(string fixture, string tensor, string folder)
    {
        Dictionary<string, torch.Tensor> tensors;
        using (var file = SafeTensorsFile.Open(Path.Combine(ParityFolders.Source, fixture + ".safetensors"))) tensors = file.ReadAll();
        tensors.Remove(tensor, out var removed);
        removed?.Dispose();
        SafeTensorsWriter.Write(Path.Combine(folder, fixture + ".safetensors"), tensors);
        foreach (var t in tensors.Values) t.Dispose();
        var sidecar = JObject.Parse(File.ReadAllText(Path.Combine(ParityFolders.Source, fixture + ".json")));
        ((JObject)sidecar["tensors"]!).Remove(tensor);
        File.WriteAllText(Path.Combine(folder, fixture + ".json"), sidecar.ToString());
    }
}
