using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Tokenization;

/// <summary>A model folder whose tokenizer files are damaged, as the user meets it: through sdpipe, its exit code and message.</summary>
public sealed class DamagedTokenizerCliTests
{
    [Test]
    public void LatentsStage_Should_ExitWith1_And_NameTheFileAndTheFix_When_VocabularyIsTruncated()
    {
        // Given a diffusers model folder whose tokenizer/vocab.json was cut short (an interrupted copy), and the stages before latents built
        using var temp = new TempFolder();
        temp.CopyTinyProfile();
        string model = temp.File("model");
        foreach (string file in Directory.EnumerateFiles(Path.Combine(RepoPaths.Fixtures, "tiny-sd"), "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(model, Path.GetRelativePath(Path.Combine(RepoPaths.Fixtures, "tiny-sd"), file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        string vocab = Path.Combine(model, "tokenizer", "vocab.json");
        byte[] bytes = File.ReadAllBytes(vocab);
        File.WriteAllBytes(vocab, bytes[..(bytes.Length / 2)]);
        string[] sets = ["--set", $"model.base={model}", "--set", "download.count=8"];
        foreach (string stage in new[] { "model", "download" })
        {
            var built = CliRunner.Sdpipe(temp.Path, null, ["run", stage, .. sets]);
            Assert.That(built.ExitCode, Is.EqualTo(0), built.All);
        }

        // When the latents stage loads the tokenizer
        var result = CliRunner.Sdpipe(temp.Path, null, ["run", "latents", .. sets]);

        // Then it fails as bad data (exit 1), naming the file and the fix, without a stack trace
        Assert.That(result.ExitCode, Is.EqualTo(1), result.All);
        Assert.That(result.Error, Does.Contain(Path.Combine("tokenizer", "vocab.json")).And.Contain("copy the model's tokenizer folder again from its source"));
        Assert.That(result.Error, Does.Not.Contain(" at SdPipeline."), "no stack trace");
    }
}
