using System.Globalization;
using SdPipeline.Pipeline;
using SdPipeline.Schedulers;

namespace SdPipeline.Sampling;

/// <summary>
/// The <c>parameters</c> text AUTOMATIC1111 writes into its PNGs and reads back (PNG Info, "Send to txt2img"), and
/// ComfyUI imports: the prompt, a <c>Negative prompt:</c> line when there is one, then one line of <c>Key: value</c> pairs.
/// A sample's other chunks keep machine-readable keys, but none is named <c>prompt</c> or <c>workflow</c>: ComfyUI parses
/// those two as its own JSON graph, and a drop of the PNG onto its canvas fails on anything else.
/// </summary>
public static class Infotext
{
    /// <summary>The PNG text keyword AUTOMATIC1111 and ComfyUI read.</summary>
    public const string Keyword = "parameters";

    /// <summary>
    /// The text for one image. <paramref name="clipSkip"/> is diffusers' count (layers skipped); AUTOMATIC1111's
    /// "Clip skip" counts from 1 for the last layer, so it is written one higher, and only when a layer is skipped.
    /// </summary>
    public static string Format(string prompt, string? negativePrompt, int steps, string sampler, double guidanceScale, long seed, int width, int height, int clipSkip)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var pairs = new List<string>
        {
            $"Steps: {steps.ToString(CultureInfo.InvariantCulture)}",
            $"Sampler: {SamplerName(sampler)}",
            $"CFG scale: {guidanceScale.ToString("R", CultureInfo.InvariantCulture)}",
            $"Seed: {seed.ToString(CultureInfo.InvariantCulture)}",
            $"Size: {width.ToString(CultureInfo.InvariantCulture)}x{height.ToString(CultureInfo.InvariantCulture)}",
        };
        if (clipSkip > 0)
            pairs.Add($"Clip skip: {(clipSkip + 1).ToString(CultureInfo.InvariantCulture)}");
        string negative = string.IsNullOrEmpty(negativePrompt) ? "" : $"\nNegative prompt: {negativePrompt}";
        return $"{prompt}{negative}\n{string.Join(", ", pairs)}";
    }

    /// <summary>
    /// The PNG text of image <paramref name="image"/> of <paramref name="request"/>: the <see cref="Keyword"/> text, and
    /// each setting under its own key for scripts. Callers add what the request does not hold (the model, say).
    /// </summary>
    public static Dictionary<string, string> TextChunks(TextToImageRequest request, int image)
    {
        ArgumentNullException.ThrowIfNull(request);
        var c = CultureInfo.InvariantCulture;
        return new Dictionary<string, string>
        {
            [Keyword] = Format(request.Prompts[image], request.NegativePrompts?[image] ?? request.NegativePrompt, request.Steps, request.Sampler,
                request.GuidanceScale, request.Seeds[image], request.Width, request.Height, request.ClipSkip),
            ["sampler"] = request.Sampler,
            ["steps"] = request.Steps.ToString(c),
            ["guidance_scale"] = request.GuidanceScale.ToString("R", c),
            ["seed"] = request.Seeds[image].ToString(c),
            ["size"] = $"{request.Width.ToString(c)}x{request.Height.ToString(c)}",
            ["software"] = $"sdpipe {ArtifactStore.ToolVersion.Split('+')[0]}",
        };
    }

    /// <summary>AUTOMATIC1111's name of the same sampler, so "Send to txt2img" selects it; DDPM, which it lacks, keeps its name.</summary>
    public static string SamplerName(string sampler) => sampler switch
    {
        SchedulerFactory.Ddim => "DDIM",
        SchedulerFactory.Pndm => "PLMS",
        SchedulerFactory.Euler => "Euler",
        SchedulerFactory.EulerAncestral => "Euler a",
        SchedulerFactory.DpmSolverPlusPlus => "DPM++ 2M",
        _ => sampler.ToUpperInvariant(),
    };
}
