using SdPipeline.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Sampling;

/// <summary>
/// The sampler loop every text-to-image pipeline runs (diffusers' <c>__call__</c> denoising loop): seeded initial noise
/// scaled by the sampler's initial sigma, then per timestep the scaled model input (doubled under guidance), the model's
/// prediction, classifier-free guidance and the sampler step. The pipelines differ only in what conditions the model.
/// </summary>
internal static class DenoisingLoop
{
    /// <summary>The final latents [B, C, h, w], in the caller's dispose scope.</summary>
    /// <param name="request">Sampler, steps, seeds and guidance scale.</param>
    /// <param name="schedulerConfig">The model's scheduler config.</param>
    /// <param name="latentShape">[C, h, w] of one image's latents.</param>
    /// <param name="device">Where the latents live.</param>
    /// <param name="guided">Whether the model sees the unconditional and conditional rows together.</param>
    /// <param name="predict">The model's prediction for (scaled input, timestep).</param>
    /// <param name="initialLatents">Starting latents instead of seeded noise (parity tests).</param>
    /// <param name="onStep">Called after each step with (step index, latents).</param>
    public static Tensor Run(TextToImageRequest request, SchedulerConfig schedulerConfig, long[] latentShape, Device device, bool guided,
        Func<Tensor, Tensor, Tensor> predict, Tensor? initialLatents, Action<int, Tensor>? onStep)
    {
        using var scheduler = SchedulerFactory.Create(request.Sampler, schedulerConfig);
        scheduler.SetTimesteps(request.Steps);
        // One CPU generator per image, as diffusers with a list of generators: the initial noise and every
        // ancestral step's noise of image i come from seed i alone, so an image does not depend on its batch.
        var generators = request.Seeds.Select(seed => new torch.Generator((ulong)seed)).ToList();
        try
        {
            Tensor Noise()
            {
                // The parts stay referenced until cat has returned: an unreferenced tensor may be finalized while libtorch reads it.
                var parts = generators.Select(g => torch.randn([1, .. latentShape], generator: g)).ToList();
                var noise = torch.cat(parts).to(device);
                foreach (var part in parts) part.Dispose();
                return noise;
            }

            var latents = (initialLatents?.to(ScalarType.Float32).to(device) ?? Noise()) * scheduler.InitNoiseSigma;
            var timesteps = scheduler.Timesteps;
            for (int i = 0; i < timesteps.shape[0]; i++)
            {
                using var stepScope = torch.NewDisposeScope();
                var t = timesteps[i];
                var input = scheduler.ScaleModelInput(guided ? torch.cat([latents, latents]) : latents, t);
                var prediction = predict(input, t);
                if (guided) prediction = Guidance.Combine(prediction, request.GuidanceScale);
                var stepNoise = scheduler.DrawsNoiseEachStep ? Noise() : null;
                latents = scheduler.Step(prediction, t, latents, noise: stepNoise).PrevSample.MoveToOuterDisposeScope();
                onStep?.Invoke(i, latents);
            }
            return latents;
        }
        finally
        {
            foreach (var generator in generators) generator.Dispose();
        }
    }
}
