using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Sampling;
using SdPipeline.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>pipeline</c>: text to image with the sidecar's pipeline arguments (<see cref="PipelineInputs"/>: prompts, negative
/// prompts, images per prompt, guidance scale, step count, clip skip, scheduler class), from the recorded <c>init_latents</c>, through <see cref="StableDiffusionPipeline"/>: the prompt ids
/// and embeddings, the timesteps, the latents after each step, the decoded and 8-bit images. The guided noise
/// prediction of each step is also checked teacher-forced (from the reference latents), which tells a UNet or
/// guidance error from a sampler error.
/// </summary>
internal sealed class PipelineCheck : IParityCheck
{
    public IReadOnlyList<string> Components { get; } =
        [ModelComponents.Tokenizer, ModelComponents.TextEncoder, ModelComponents.Unet, ModelComponents.Vae, ModelComponents.Scheduler];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        using var _ = no_grad();
        string name = fixture.Name;
        var settings = new Lazy<PipelineInputs>(() => PipelineInputs.Read(fixture, model.SchedulerConfig));
        // The components belong to the model cache, which disposes them: this pipeline is not disposed.
        var pipeline = new Lazy<StableDiffusionPipeline>(() => new StableDiffusionPipeline(model.ClipTokenizer, model.ClipTextModel, model.UNet,
            model.AutoencoderKL, model.SchedulerConfig, torch.CPU));

        rows.Check($"{name}.input_ids", () =>
        {
            var comparisons = new List<TensorComparison>();
            foreach (var (key, negative) in new[] { ("input_ids", false), ("negative_input_ids", true) })
                if (key == "input_ids" || fixture.Contains(key))
                {
                    var expected = fixture.Get(key);
                    var prompts = settings.Value.PromptsForRows(key, expected.shape[0], negative);
                    comparisons.Add(TensorComparison.Of(key, model.ClipTokenizer.EncodeBatch(prompts), expected, ParityTolerance.Exact));
                }
            return comparisons;
        }, "tokenizer");

        rows.Check($"{name}.prompt_embeds", () =>
        {
            var comparisons = new List<TensorComparison>();
            foreach (var (key, negative) in new[] { ("prompt_embeds", false), ("negative_prompt_embeds", true) })
                if (key == "prompt_embeds" || fixture.Contains(key))
                {
                    var expected = fixture.Get(key);
                    var prompts = settings.Value.PromptsForRows(key, expected.shape[0], negative);
                    comparisons.Add(TensorComparison.Of(key, pipeline.Value.EncodePrompts(prompts, settings.Value.ClipSkip), expected, ParityTolerance.ModelOutput));
                }
            return comparisons;
        });

        rows.Check($"{name}.timesteps", () =>
        {
            using var scheduler = CreateScheduler(settings.Value, model);
            var expected = fixture.Get("timesteps");
            return [TensorComparison.Of("timesteps", scheduler.Timesteps, expected, torch.is_integral(expected.dtype) ? ParityTolerance.Exact : ParityTolerance.FloatTimesteps)];
        }, "the sidecar's scheduler class over the model's scheduler_config.json");

        if (fixture.Contains("guided_noise_pred_per_step"))
            rows.Check($"{name}.guided_noise_pred", () => TeacherForcedNoise(fixture, model, pipeline.Value, settings.Value),
                "each step from the reference latents");

        var generated = new Lazy<(TextToImageResult Result, Tensor PerStep)>(() => Generate(fixture, pipeline.Value, settings.Value));
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
        }, "VAE decode of latents / scaling_factor");

        if (fixture.Contains("image_uint8_nhwc"))
            rows.Check($"{name}.image_uint8", () =>
            {
                var bytes = ImagePostprocessor.ToUint8(ImagePostprocessor.ToUnitRange(generated.Value.Result.Decoded));
                return [TensorComparison.Of("image_uint8_nhwc", bytes, fixture.Get("image_uint8_nhwc"), ParityTolerance.Uint8Image)];
            });
    }

    private static IScheduler CreateScheduler(PipelineInputs settings, ModelComponents model)
    {
        var scheduler = SchedulerFactory.Create(settings.Sampler, model.SchedulerConfig);
        scheduler.SetTimesteps(settings.Steps);
        return scheduler;
    }

    private static (TextToImageResult Result, Tensor PerStep) Generate(ParityFixture fixture, StableDiffusionPipeline pipeline, PipelineInputs settings)
    {
        var init = fixture.Get("init_latents");
        int factor = pipeline.VaeScaleFactor;
        settings.CheckLatents(fixture.Name + ".json", init.shape, factor, fixture.Setting<int?>("height"), fixture.Setting<int?>("width"));
        var prompts = settings.ImagePrompts;
        var request = new TextToImageRequest(prompts, new long[prompts.Count], GuidanceScale: settings.GuidanceScale, Steps: settings.Steps,
            Sampler: settings.Sampler, Width: (int)init.shape[3] * factor, Height: (int)init.shape[2] * factor, ClipSkip: settings.ClipSkip)
        {
            NegativePrompts = settings.ImageNegativePrompts,
        };
        // Each step's latents live in the pipeline's step scope: keep a copy outside every scope, and free it here.
        var perStep = new List<Tensor>();
        try
        {
            var result = pipeline.Generate(request, init, (_, latents) => perStep.Add(latents.detach().clone().DetachFromDisposeScope()));
            return (result, torch.stack(perStep));
        }
        finally
        {
            foreach (var copy in perStep) copy.Dispose();
        }
    }

    private static List<TensorComparison> TeacherForcedNoise(ParityFixture fixture, ModelComponents model, StableDiffusionPipeline pipeline, PipelineInputs settings)
    {
        var expected = fixture.Get("guided_noise_pred_per_step");
        var latents = fixture.Get("latents_per_step");
        bool guided = settings.GuidanceScale > 1.0;
        var cond = pipeline.EncodePrompts(settings.ImagePrompts, settings.ClipSkip);
        var embeddings = guided ? torch.cat([pipeline.EncodePrompts(settings.ImageNegativePrompts, settings.ClipSkip), cond]) : cond;
        using var scheduler = CreateScheduler(settings, model);
        var timesteps = scheduler.Timesteps;
        if (timesteps.shape[0] != expected.shape[0])
            throw new ParityFixtureException($"guided_noise_pred_per_step holds {expected.shape[0]} steps, the scheduler makes {timesteps.shape[0]}");

        var predictions = new List<Tensor>();
        var x = fixture.Get("init_latents") * scheduler.InitNoiseSigma;
        for (int i = 0; i < timesteps.shape[0]; i++)
        {
            var t = timesteps[i];
            var input = scheduler.ScaleModelInput(guided ? torch.cat([x, x]) : x, t);
            var prediction = model.UNet.call(input, t, embeddings);
            if (guided) prediction = Guidance.Combine(prediction, settings.GuidanceScale);
            predictions.Add(prediction);
            // The step keeps a stateful sampler's step index in line; its result is replaced by the reference.
            scheduler.Step(prediction, t, x);
            x = latents[i];
        }
        return [TensorComparison.Of("guided_noise_pred_per_step", torch.stack(predictions), expected, ParityTolerance.ModelOutput)];
    }
}
