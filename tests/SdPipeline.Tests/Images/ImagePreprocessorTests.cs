using Newtonsoft.Json.Linq;
using SdPipeline.Images;
using SdPipeline.Latents;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;

namespace SdPipeline.Tests.Images;

/// <summary>Preprocessing against diffusers' transform (torchvision over PIL) on every fixture case.</summary>
public sealed class ImagePreprocessorTests
{
    private const double GreyLevel = 2.0 / 255.0;

    public static IEnumerable<TestCaseData> Cases()
    {
        var cases = JObject.Parse(File.ReadAllText(Path.Combine(RepoPaths.Fixtures, "preprocess", "preprocess.json")))["cases"]!;
        foreach (var c in cases)
            yield return new TestCaseData(c["source"]!.ToString(), c["tensor"]!.ToString(), c["resolution"]!.Value<int>(),
                c["interpolation"]!.ToString(), c["random_flip"]!.Value<bool>()).SetName($"Preprocess {c["tensor"]}");
    }

    [TestCaseSource(nameof(Cases))]
    public void Transform_Should_MatchDiffusers(string source, string tensor, int resolution, string interpolation, bool flip)
    {
        // Given a fixture image and what diffusers' transform makes of it
        string folder = Path.Combine(RepoPaths.Fixtures, "preprocess");
        using var fixtures = SafeTensorsFile.Open(Path.Combine(folder, "preprocess.safetensors"));
        using var expected = fixtures.Read(tensor);
        var reference = expected.data<float>().ToArray();

        // When we transform it
        var mode = Enum.Parse<Interpolation>(interpolation, ignoreCase: true);
        var (data, crop) = ImagePreprocessor.Transform(File.ReadAllBytes(Path.Combine(folder, source)), resolution, resolution, mode, centerCrop: true, flip);

        // Then every pixel is what PIL computes. (The requirement is a mean under half a grey level and at most
        // one level anywhere for bilinear and bicubic; decoding with libjpeg-turbo and resampling with PIL's
        // fixed-point arithmetic gives exact equality, so anything else is a regression.)
        Assert.That(crop.Width, Is.EqualTo(resolution));
        double[] diff = data.Zip(reference, (a, b) => Math.Abs((double)a - b)).ToArray();
        double meanLevels = diff.Average() / GreyLevel, maxLevels = diff.Max() / GreyLevel;
        TestContext.Out.WriteLine($"{tensor}: mean {meanLevels:0.000} grey levels, max {maxLevels:0.00}");
        Assert.That(meanLevels, Is.LessThanOrEqualTo(0.5), tensor);
        Assert.That(maxLevels, Is.LessThanOrEqualTo(1e-3), $"{tensor}: {maxLevels} grey levels from PIL");
    }

    [Test]
    public void CoverSize_Should_TruncateTheLongSide_AsTorchvision()
    {
        Assert.That(ImagePreprocessor.CoverSize(300, 200, 64, 64), Is.EqualTo((96, 64)));
        Assert.That(ImagePreprocessor.CoverSize(180, 260, 64, 64), Is.EqualTo((64, 92))); // 64*260/180 = 92.4
    }

    [Test]
    public void CenterCrop_Should_RoundHalfToEven_AsPython()
    {
        Assert.That(ImagePreprocessor.CenterCrop(65, 64, 64, 64).Left, Is.EqualTo(0)); // round(0.5) = 0
        Assert.That(ImagePreprocessor.CenterCrop(67, 64, 64, 64).Left, Is.EqualTo(2)); // round(1.5) = 2
    }
}
