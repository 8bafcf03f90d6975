using SdPipeline.Sampling;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// The rows every text-to-image check ends with, SD's and SDXL's alike: the latents after each step and at the end, the
/// decoded image (and its [0, 1] form when recorded), and the 8-bit image, against the fixture.
/// </summary>
internal static class GeneratedImageRows
{
    /// <summary>Adds <c>NAME.latents</c>, <c>NAME.image</c> and, when recorded, <c>NAME.image_uint8</c>.</summary>
    public static void Check(ParityRows rows, string name, ParityFixture fixture, Lazy<(TextToImageResult Result, Tensor PerStep)> generated, string decodeNote)
    {
        rows.Check($"{name}.latents", () =>
        {
            var comparisons = new List<TensorComparison>();
            if (fixture.Contains("latents_per_step"))
                comparisons.Add(TensorComparison.Of("latents_per_step", generated.Value.PerStep, fixture.Get("latents_per_step"), ParityTolerance.PipelineLatents));
            comparisons.Add(TensorComparison.Of("final_latents", generated.Value.Result.Latents, fixture.Get("final_latents"), ParityTolerance.PipelineLatents));
            return comparisons;
        });

        rows.Check($"{name}.image", () =>
        {
            var decoded = generated.Value.Result.Decoded;
            var comparisons = new List<TensorComparison>
            {
                TensorComparison.Of("image_decoded", decoded, fixture.Get("image_decoded"), ParityTolerance.PipelineImage),
            };
            if (fixture.Contains("image_postprocessed"))
                comparisons.Add(TensorComparison.Of("image_postprocessed", ImagePostprocessor.ToUnitRange(decoded), fixture.Get("image_postprocessed"), ParityTolerance.PipelineImage));
            return comparisons;
        }, decodeNote);

        if (fixture.Contains("image_uint8_nhwc"))
            rows.Check($"{name}.image_uint8", () =>
            {
                var bytes = ImagePostprocessor.ToUint8(ImagePostprocessor.ToUnitRange(generated.Value.Result.Decoded));
                return [TensorComparison.Of("image_uint8_nhwc", bytes, fixture.Get("image_uint8_nhwc"), ParityTolerance.Uint8Image)];
            });
    }
}
