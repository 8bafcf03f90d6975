using Newtonsoft.Json.Linq;
using SdPipeline.Schedulers;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// The arguments of diffusers' <c>StableDiffusionPipeline.__call__</c> as a pipeline fixture's sidecar records them, in
/// every form the pipeline takes: <c>prompt</c> (or the fixtures' <c>prompts</c>) as a string or a list;
/// <c>negative_prompt</c> as null (empty), a string (for every prompt) or a list (one per prompt);
/// <c>num_images_per_prompt</c>; <c>guidance_scale</c>, <c>num_inference_steps</c>, <c>clip_skip</c> and <c>eta</c>,
/// with diffusers' defaults when absent; <c>height</c> / <c>width</c>, checked against the recorded latents. Arguments
/// the pipeline here does not implement (<c>guidance_rescale</c>, custom <c>timesteps</c> / <c>sigmas</c>) are refused
/// by name when they change anything, so a check never passes for a call it did not make.
/// </summary>
/// <param name="Prompts">The prompts, one per prompt (diffusers' batch size).</param>
/// <param name="NegativePrompts">One negative prompt per prompt ("" where none was given).</param>
/// <param name="ImagesPerPrompt">diffusers' <c>num_images_per_prompt</c>.</param>
/// <param name="GuidanceScale">Classifier-free guidance scale.</param>
/// <param name="Steps">Sampler steps.</param>
/// <param name="Sampler">The shipped sampler name of the sidecar's scheduler class.</param>
/// <param name="ClipSkip">Text-encoder layers skipped (0: the last layer).</param>
internal sealed record PipelineInputs(IReadOnlyList<string> Prompts, IReadOnlyList<string> NegativePrompts, int ImagesPerPrompt,
    double GuidanceScale, int Steps, string Sampler, int ClipSkip)
{
    /// <summary>One prompt per generated image: each prompt <see cref="ImagesPerPrompt"/> times in a row, as diffusers repeats them.</summary>
    public IReadOnlyList<string> ImagePrompts => Repeat(Prompts);

    /// <summary>One negative prompt per generated image, in the order of <see cref="ImagePrompts"/>.</summary>
    public IReadOnlyList<string> ImageNegativePrompts => Repeat(NegativePrompts);

    /// <summary>
    /// The prompts that a recorded tensor with <paramref name="rows"/> rows holds: one per prompt (the tokenizer's
    /// output) or one per image (<c>encode_prompt</c>'s output, repeated for <c>num_images_per_prompt</c>).
    /// </summary>
    public IReadOnlyList<string> PromptsForRows(string tensor, long rows, bool negative) =>
        ForRows(tensor, rows, negative ? NegativePrompts : Prompts, negative ? ImageNegativePrompts : ImagePrompts);

    /// <summary>Reads the inputs from <paramref name="fixture"/>'s sidecar; <paramref name="scheduler"/> is the model's config.</summary>
    /// <exception cref="ParityFixtureException">A value has a form diffusers does not take, or one this pipeline does not implement; the message names the key.</exception>
    public static PipelineInputs Read(ParityFixture fixture, SchedulerConfig scheduler)
    {
        string file = fixture.Name + ".json";
        var sidecar = fixture.Sidecar;
        string promptKey = sidecar["prompt"] is not null ? "prompt" : "prompts";
        var prompts = Strings(sidecar[promptKey], file, promptKey, count: null)
            ?? throw new ParityFixtureException($"{file} has no 'prompt' (or 'prompts'): a string or a list of strings");
        if (prompts.Count == 0) throw new ParityFixtureException($"{file}: '{promptKey}' is an empty list");
        var negatives = Strings(sidecar["negative_prompt"], file, "negative_prompt", prompts.Count) ?? Enumerable.Repeat("", prompts.Count).ToList();

        int imagesPerPrompt = fixture.Setting<int?>("num_images_per_prompt") ?? 1;
        if (imagesPerPrompt < 1) throw new ParityFixtureException($"{file}: num_images_per_prompt {imagesPerPrompt}; it must be at least 1");
        int clipSkip = fixture.Setting<int?>("clip_skip") ?? 0;
        if (clipSkip < 0) throw new ParityFixtureException($"{file}: clip_skip {clipSkip}; it must be 0 or more");
        double eta = fixture.Setting<double?>("eta") ?? 0;
        if (eta != 0) throw new ParityFixtureException($"{file}: eta {eta}; the pipeline samples with eta 0");
        double rescale = fixture.Setting<double?>("guidance_rescale") ?? 0;
        if (rescale != 0) throw new ParityFixtureException($"{file}: guidance_rescale {rescale} is not implemented by SdPipeline's pipeline (only 0)");
        foreach (string key in new[] { "timesteps", "sigmas" })
            if (sidecar[key] is { Type: not JTokenType.Null })
                throw new ParityFixtureException($"{file}: custom '{key}' are not implemented by SdPipeline's pipeline; record num_inference_steps instead");

        string cls = fixture.Require<string>("scheduler");
        string sampler;
        bool drawsNoise;
        try
        {
            sampler = SchedulerFactory.ShippedName(scheduler with { ClassName = cls });
            using var probe = SchedulerFactory.Create(sampler, scheduler);
            drawsNoise = probe.DrawsNoiseEachStep;
        }
        catch (SchedulerConfigException e)
        {
            throw new ParityFixtureException(e.Message);
        }
        if (drawsNoise)
            throw new ParityFixtureException($"{cls} draws noise at every step, which the fixture does not record");

        return new PipelineInputs(prompts, negatives, imagesPerPrompt, fixture.Setting<double?>("guidance_scale") ?? 7.5,
            fixture.Setting<int?>("num_inference_steps") ?? 50, sampler, clipSkip);
    }

    /// <summary>Checks the sidecar's <c>height</c> / <c>width</c> (when given) and the latents' batch against the inputs.</summary>
    public void CheckLatents(string file, long[] latentShape, int vaeScaleFactor, int? height, int? width)
    {
        if (latentShape.Length != 4) throw new ParityFixtureException($"init_latents has shape [{string.Join(", ", latentShape)}], expected [B, C, h, w]");
        if (latentShape[0] != ImagePrompts.Count)
            throw new ParityFixtureException(
                $"init_latents holds {latentShape[0]} images; {Prompts.Count} prompts × num_images_per_prompt {ImagesPerPrompt} make {ImagePrompts.Count}");
        if (height is int h && h != latentShape[2] * vaeScaleFactor)
            throw new ParityFixtureException($"{file}: height {h}, but init_latents are {latentShape[2]} high ({latentShape[2] * vaeScaleFactor} px)");
        if (width is int w && w != latentShape[3] * vaeScaleFactor)
            throw new ParityFixtureException($"{file}: width {w}, but init_latents are {latentShape[3]} wide ({latentShape[3] * vaeScaleFactor} px)");
    }

    private IReadOnlyList<string> Repeat(IReadOnlyList<string> perPrompt) =>
        perPrompt.SelectMany(p => Enumerable.Repeat(p, ImagesPerPrompt)).ToList();

    private IReadOnlyList<string> ForRows(string tensor, long rows, IReadOnlyList<string> perPrompt, IReadOnlyList<string> perImage) =>
        rows == perPrompt.Count ? perPrompt
        : rows == perImage.Count ? perImage
        : throw new ParityFixtureException($"{tensor} has {rows} rows: expected {perPrompt.Count} (one per prompt) or {perImage.Count} (one per image)");

    // A string, a list of strings (of `count` entries when given), or null (absent).
    private static List<string>? Strings(JToken? token, string file, string key, int? count)
    {
        switch (token)
        {
            case null or { Type: JTokenType.Null }:
                return null;
            case { Type: JTokenType.String }:
                return Enumerable.Repeat((string)token!, count ?? 1).ToList();
            case JArray array when array.All(item => item.Type == JTokenType.String):
                if (count is int expected && array.Count != expected)
                    throw new ParityFixtureException(
                        $"{file}: '{key}' lists {array.Count} prompts for {expected} prompts; give one per prompt, or one string for all (as diffusers)");
                return array.Select(item => (string)item!).ToList();
            default:
                throw new ParityFixtureException($"{file}: '{key}' is {token.Type}; expected a string, a list of strings (one per prompt) or null");
        }
    }
}
