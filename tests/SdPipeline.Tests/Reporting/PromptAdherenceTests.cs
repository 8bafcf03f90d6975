using SdPipeline.Data;
using SdPipeline.Images;
using SdPipeline.Reporting;

namespace SdPipeline.Tests.Reporting;

public sealed class PromptAdherenceTests
{
    [TestCase("a red circle on a blue background", "red", "circle", "blue")]
    [TestCase("an orange triangle on a white background", "orange", "triangle", "white")]
    [TestCase("A Purple square on an orange background.", "purple", "square", "orange")]
    public void TryParse_Should_ReadAShapesCaption(string caption, string color, string shape, string background)
    {
        Assert.That(ShapesCaption.TryParse(caption), Is.EqualTo(new ShapesCaption(color, shape, background)));
    }

    [TestCase("a photo of a cat")]
    [TestCase("a teal circle on a blue background")]
    [TestCase("a red hexagon on a blue background")]
    public void TryParse_Should_ReturnNull_When_ThePromptIsNotAShapesCaption(string caption)
    {
        Assert.That(ShapesCaption.TryParse(caption), Is.Null);
    }

    [TestCase(64)]
    [TestCase(32)]
    [TestCase(128)]
    public void Read_Should_ReadEveryCaptionBack_When_TheImageIsTheGeneratorsOwn(int imageSize)
    {
        // Given 64 images of the shapes dataset with their captions
        var items = ReportTestData.Shapes(64, imageSize);

        // When each is read from its pixels
        var mismatches = items
            .Select(item => (item.Caption, Expected: ShapesCaption.TryParse(item.Caption)!, Reading: PromptAdherence.Read(ImageCodec.DecodeRgb(item.Png))))
            .Where(r => r.Reading.ShapeColor != r.Expected.Color || r.Reading.Background != r.Expected.Background)
            .Select(r => $"{r.Caption}: read {r.Reading}")
            .ToList();

        // Then all of them match
        Assert.That(mismatches, Is.Empty);
    }

    [Test]
    public void Evaluate_Should_Give100Percent_When_SamplesAreTheDatasetImages_And_0Percent_When_Constant()
    {
        // Given fine-tuned samples that are the dataset's images and base samples of one flat palette colour
        var items = ReportTestData.Shapes(16);
        var sets = items.Select(item => new SampleSet(item.Caption,
            [SampleImage.FromPng(1, ReportTestData.Constant(64, 30, 70, 220))],
            [SampleImage.FromPng(1, item.Png)])).ToList();

        // When
        var result = PromptAdherence.Evaluate(sets)!;

        // Then
        Assert.That(result.FineTuned, Is.EqualTo(new AdherenceRates(16, 16, 16, 16)));
        Assert.That(result.FineTuned.ColorRate, Is.EqualTo(1.0));
        Assert.That(result.Base.Images, Is.EqualTo(16));
        Assert.That(result.Base.ColorMatches, Is.Zero, "a constant image has no shape, whatever its colour");
        Assert.That(result.Base.ColorRate, Is.Zero);
        Assert.That(result.Verdicts, Has.Count.EqualTo(32));
    }

    [Test]
    public void Read_Should_FindNoShape_When_TheImageIsBlack()
    {
        var reading = PromptAdherence.Read(ImageCodec.DecodeRgb(ReportTestData.Constant(64, 0, 0, 0)));

        Assert.That(reading, Is.EqualTo(new ColorReading("black", 1.0, null, 0)));
    }

    [Test]
    public void Read_Should_FindNoColour_When_TheImageIsGreyNoiseOfNoPaletteColour()
    {
        var reading = PromptAdherence.Read(ImageCodec.DecodeRgb(ReportTestData.Constant(64, 128, 128, 128)));

        Assert.That(reading.Background, Is.Null);
        Assert.That(reading.ShapeColor, Is.Null);
    }

    [Test]
    public void Evaluate_Should_ReturnNull_When_NoPromptIsAShapesCaption()
    {
        var sets = new[] { new SampleSet("a photo of a cat", [], [SampleImage.FromPng(1, ReportTestData.Noise(32, 1))]) };

        Assert.That(PromptAdherence.Evaluate(sets), Is.Null);
    }
}
