using Newtonsoft.Json.Linq;
using SdPipeline.Models.Unet;
using SdPipeline.Sampling;
using SdPipeline.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>pipeline*</c> of an SDXL model (the fixture holds <c>add_time_ids</c>): the sidecar's <c>call</c> through
/// <see cref="StableDiffusionXLPipeline"/> from the recorded <c>init_latents</c>: both tokenizers' ids, the prompt and
/// pooled embeddings of both sides (an absent negative prompt gives zeros under <c>force_zeros_for_empty_prompt</c>), the
/// UNet's added conditions, the timesteps and sigmas, each step's guided noise prediction teacher-forced, the latents
/// after each step, the decoded and 8-bit images.
/// </summary>
internal sealed class SdxlPipelineCheck : IParityCheck
{
    public IReadOnlyList<string> Components { get; } =
    [
        ModelComponents.Tokenizer, ModelComponents.Tokenizer2, ModelComponents.TextEncoder, ModelComponents.TextEncoder2,
        ModelComponents.Unet, ModelComponents.Vae, ModelComponents.Scheduler,
    ];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        using var _ = no_grad();
        string name = fixture.Name;
        var settings = new Lazy<Settings>(() => Settings.Read(fixture, model));
        // The components belong to the model cache, which disposes them: this pipeline is not disposed.
        var pipeline = new Lazy<StableDiffusionXLPipeline>(() => new StableDiffusionXLPipeline(model.SdxlPromptEncoder, model.UNet, model.AutoencoderKL,
            model.SchedulerConfig, model.ForceZerosForEmptyPrompt, torch.CPU));
        var cond = new Lazy<SdxlPromptEmbeddings>(() => pipeline.Value.EncodePrompts(settings.Value.Prompts));
        var uncond = new Lazy<SdxlPromptEmbeddings>(() => pipeline.Value.EncodeNegativePrompts(settings.Value.NegativePrompts, cond.Value));

        rows.Check($"{name}.input_ids", () =>
        {
            var s = settings.Value;
            var encoder = pipeline.Value.PromptEncoder;
            var comparisons = new List<TensorComparison>
            {
                TensorComparison.Of("input_ids", encoder.Tokenizer.EncodeBatch(s.Prompts), fixture.Get("input_ids"), ParityTolerance.Exact),
                TensorComparison.Of("input_ids_2", encoder.Tokenizer2.EncodeBatch(s.Prompts), fixture.Get("input_ids_2"), ParityTolerance.Exact),
            };
            if (fixture.Contains("negative_input_ids") && s.NegativePrompts is { } negatives)
            {
                comparisons.Add(TensorComparison.Of("negative_input_ids", encoder.Tokenizer.EncodeBatch(negatives), fixture.Get("negative_input_ids"), ParityTolerance.Exact));
                comparisons.Add(TensorComparison.Of("negative_input_ids_2", encoder.Tokenizer2.EncodeBatch(negatives), fixture.Get("negative_input_ids_2"), ParityTolerance.Exact));
            }
            return comparisons;
        }, "both tokenizers");

        rows.Check($"{name}.prompt_embeds", () =>
        [
            TensorComparison.Of("prompt_embeds", cond.Value.PromptEmbeds, fixture.Get("prompt_embeds"), ParityTolerance.ModelOutput),
            TensorComparison.Of("pooled_prompt_embeds", cond.Value.PooledPromptEmbeds, fixture.Get("pooled_prompt_embeds"), ParityTolerance.ModelOutput),
            TensorComparison.Of("negative_prompt_embeds", uncond.Value.PromptEmbeds, fixture.Get("negative_prompt_embeds"), ParityTolerance.ModelOutput),
            TensorComparison.Of("negative_pooled_prompt_embeds", uncond.Value.PooledPromptEmbeds, fixture.Get("negative_pooled_prompt_embeds"), ParityTolerance.ModelOutput),
        ], settings.Value.NegativePrompts is null ? "no negative prompt: zeros (force_zeros_for_empty_prompt)" : "negative prompts encoded like prompts");

        rows.Check($"{name}.added_conditions", () =>
        {
            var s = settings.Value;
            int rowsCount = 2 * s.Prompts.Count;
            var timeIds = SdxlTimeIds.Stack(Enumerable.Repeat(SdxlTimeIds.ForGeneration(s.Height, s.Width), rowsCount).ToList());
            return
            [
                TensorComparison.Of("add_text_embeds", torch.cat([uncond.Value.PooledPromptEmbeds, cond.Value.PooledPromptEmbeds]), fixture.Get("add_text_embeds"), ParityTolerance.ModelOutput),
                TensorComparison.Of("add_time_ids", timeIds, fixture.Get("add_time_ids"), ParityTolerance.Exact),
            ];
        }, "pooled embeds (uncond first) and the time ids (original = target = the image size, crop 0, 0)");

        rows.Check($"{name}.timesteps", () =>
        {
            using var scheduler = settings.Value.CreateScheduler(model);
            var expected = fixture.Get("timesteps");
            var comparisons = new List<TensorComparison>
            {
                TensorComparison.Of("timesteps", scheduler.Timesteps, expected, torch.is_integral(expected.dtype) ? ParityTolerance.Exact : ParityTolerance.FloatTimesteps),
                TensorComparison.Of("init_noise_sigma", scheduler.InitNoiseSigma, fixture.Get("init_noise_sigma").item<float>(), ParityTolerance.SchedulerTable),
            };
            if (fixture.Contains("sigmas") && scheduler is EulerDiscreteScheduler euler)
                comparisons.Add(TensorComparison.Of("sigmas", euler.Sigmas, fixture.Get("sigmas"), ParityTolerance.SchedulerTable));
            return comparisons;
        }, "the sidecar's scheduler class over the model's scheduler_config.json");

        if (fixture.Contains("guided_noise_pred_per_step"))
            rows.Check($"{name}.guided_noise_pred", () => TeacherForcedNoise(fixture, model, settings.Value, cond.Value, uncond.Value),
                "each step from the reference latents");

        var generated = new Lazy<(TextToImageResult Result, Tensor PerStep)>(() => Generate(fixture, pipeline.Value, settings.Value, cond.Value, uncond.Value));
        GeneratedImageRows.Check(rows, name, fixture, generated, "float32 VAE decode of latents / scaling_factor");
    }

    private static (TextToImageResult Result, Tensor PerStep) Generate(ParityFixture fixture, StableDiffusionXLPipeline pipeline, Settings settings,
        SdxlPromptEmbeddings cond, SdxlPromptEmbeddings uncond)
    {
        var init = fixture.Get("init_latents");
        var request = new TextToImageRequest(settings.Prompts, new long[settings.Prompts.Count], null, settings.GuidanceScale, settings.Steps,
            settings.Sampler, Width: settings.Width, Height: settings.Height);
        var perStep = new List<Tensor>();
        try
        {
            var result = pipeline.GenerateFromEmbeddings(request, cond, settings.GuidanceScale > 1.0 ? uncond : null, init,
                (_, latents) => perStep.Add(latents.detach().clone().DetachFromDisposeScope()));
            return (result, torch.stack(perStep));
        }
        finally
        {
            foreach (var copy in perStep) copy.Dispose();
        }
    }

    private static List<TensorComparison> TeacherForcedNoise(ParityFixture fixture, ModelComponents model, Settings settings,
        SdxlPromptEmbeddings cond, SdxlPromptEmbeddings uncond)
    {
        var expected = fixture.Get("guided_noise_pred_per_step");
        var latents = fixture.Get("latents_per_step");
        var both = SdxlPromptEmbeddings.Concat(uncond, cond);
        var timeIds = SdxlTimeIds.Stack(Enumerable.Repeat(SdxlTimeIds.ForGeneration(settings.Height, settings.Width), 2 * settings.Prompts.Count).ToList());
        var added = new AddedConditions(both.PooledPromptEmbeds, timeIds);
        using var scheduler = settings.CreateScheduler(model);
        var timesteps = scheduler.Timesteps;
        if (timesteps.shape[0] != expected.shape[0])
            throw new ParityFixtureException($"guided_noise_pred_per_step holds {expected.shape[0]} steps, the scheduler makes {timesteps.shape[0]}");

        var raw = new List<Tensor>();
        var predictions = new List<Tensor>();
        var x = fixture.Get("init_latents") * scheduler.InitNoiseSigma;
        for (int i = 0; i < timesteps.shape[0]; i++)
        {
            var t = timesteps[i];
            var output = model.UNet.forward(scheduler.ScaleModelInput(torch.cat([x, x]), t), t, both.PromptEmbeds, added);
            raw.Add(output);
            var prediction = Guidance.Combine(output, settings.GuidanceScale);
            predictions.Add(prediction);
            scheduler.Step(prediction, t, x);
            x = latents[i];
        }
        var comparisons = new List<TensorComparison>
        {
            TensorComparison.Of("guided_noise_pred_per_step", torch.stack(predictions), expected, ParityTolerance.ModelOutput),
        };
        if (fixture.Contains("unet_out_per_step"))
            comparisons.Add(TensorComparison.Of("unet_out_per_step", torch.stack(raw), fixture.Get("unet_out_per_step"), ParityTolerance.ModelOutput));
        return comparisons;
    }

    private sealed record Settings(IReadOnlyList<string> Prompts, IReadOnlyList<string>? NegativePrompts, double GuidanceScale, int Steps, string Sampler,
        int Height, int Width)
    {
        public IScheduler CreateScheduler(ModelComponents model)
        {
            var scheduler = SchedulerFactory.Create(Sampler, model.SchedulerConfig);
            scheduler.SetTimesteps(Steps);
            return scheduler;
        }

        public static Settings Read(ParityFixture fixture, ModelComponents model)
        {
            var call = fixture.Sidecar["call"] as JObject ?? throw new ParityFixtureException($"{fixture.Name}.json has no 'call' object");
            T Require<T>(string key) => call[key] is { Type: not JTokenType.Null } token
                ? token.ToObject<T>()!
                : throw new ParityFixtureException($"{fixture.Name}.json: call.{key} is missing");
            var prompts = call["prompt"] is { Type: JTokenType.String } single ? [single.Value<string>()!] : Require<string[]>("prompt");
            IReadOnlyList<string>? negatives = call["negative_prompt"] switch
            {
                null or { Type: JTokenType.Null } => null,
                { Type: JTokenType.String } token => Enumerable.Repeat(token.Value<string>()!, prompts.Length).ToList(),
                JArray array when array.Count == prompts.Length => array.Values<string>().Select(v => v ?? "").ToList(),
                _ => throw new ParityFixtureException($"{fixture.Name}.json: call.negative_prompt must be null, a string or one string per prompt"),
            };
            foreach (string key in new[] { "original_size", "target_size" })
                if (call[key] is { Type: not JTokenType.Null })
                    throw new ParityFixtureException($"{fixture.Name}.json: call.{key} is set; the pipeline uses the image size");
            if (call["crops_coords_top_left"] is JArray crop && crop.Values<int>().Any(v => v != 0))
                throw new ParityFixtureException($"{fixture.Name}.json: call.crops_coords_top_left is not (0, 0)");
            string cls = fixture.Require<string>("scheduler");
            string sampler;
            bool drawsNoise;
            try
            {
                sampler = SchedulerFactory.ShippedName(model.SchedulerConfig with { ClassName = cls });
                using var probe = SchedulerFactory.Create(sampler, model.SchedulerConfig);
                drawsNoise = probe.DrawsNoiseEachStep;
            }
            catch (SchedulerConfigException e)
            {
                throw new ParityFixtureException(e.Message);
            }
            if (drawsNoise)
                throw new ParityFixtureException($"{cls} draws noise at every step, which the fixture does not record");
            return new Settings(prompts, negatives, Require<double>("guidance_scale"), Require<int>("num_inference_steps"), sampler,
                Require<int>("height"), Require<int>("width"));
        }
    }
}
