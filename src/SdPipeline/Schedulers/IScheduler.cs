using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>
/// A sampler of the reverse diffusion process, as the denoising loop drives it (the diffusers scheduler contract):
/// <code>
/// scheduler.SetTimesteps(steps);
/// x = noise * scheduler.InitNoiseSigma;
/// foreach t in scheduler.Timesteps:
///     eps = unet(scheduler.ScaleModelInput(x, t), t, ...);
///     x = scheduler.Step(eps, t, x, generator).PrevSample;
/// </code>
/// </summary>
/// <remarks>
/// Schedulers keep state between steps (multistep history, the step index), so one instance serves one
/// sampling run at a time; <see cref="SetTimesteps"/> resets it. Tensors a scheduler returns belong to the caller
/// (they join the caller's dispose scope); the scheduler's own tables and history are freed by <see cref="IDisposable.Dispose"/>.
/// </remarks>
public interface IScheduler : IDisposable
{
    /// <summary>The user-facing name (<see cref="SchedulerFactory.Names"/>).</summary>
    string Name { get; }

    /// <summary>The configuration the scheduler was built from.</summary>
    SchedulerConfig Config { get; }

    /// <summary>The training noise schedule (βₜ, ᾱₜ) the sampler inverts.</summary>
    NoiseSchedule Schedule { get; }

    /// <summary>Chooses the inference timesteps for <paramref name="numInferenceSteps"/> denoising steps and resets the sampler state.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Fewer than 1 step, more than the training steps, or a spacing that yields a timestep outside 0 … N − 1.</exception>
    void SetTimesteps(int numInferenceSteps);

    /// <summary>
    /// The timesteps to visit, in order: int64 for DDPM/DDIM/PNDM/DPM-Solver, float32 for the Euler samplers.
    /// PNDM visits one timestep twice. Available after <see cref="SetTimesteps"/>.
    /// </summary>
    Tensor Timesteps { get; }

    /// <summary>The standard deviation of the initial noise: multiply the N(0, 1) latents by it before the first step.</summary>
    double InitNoiseSigma { get; }

    /// <summary>
    /// Whether <see cref="Step"/> adds fresh noise (an ancestral sampler: DDPM, Euler ancestral, DDIM with η &gt; 0). The
    /// denoising loop then draws the step's standard-normal tensor from each image's seeded generator and passes it as
    /// <c>noise</c>, so an image depends on its seed alone. The loop asks this instead of knowing scheduler classes, as
    /// k-diffusion's samplers own their noise, so a new sampler is one class plus its name in <see cref="SchedulerFactory"/>.
    /// </summary>
    bool DrawsNoiseEachStep { get; }

    /// <summary>The UNet input for <paramref name="sample"/> at <paramref name="timestep"/> (the Euler samplers divide by √(σ² + 1); others return it unchanged).</summary>
    /// <param name="sample">The current latents x_t.</param>
    /// <param name="timestep">An element of <see cref="Timesteps"/>.</param>
    /// <returns>A new tensor handle, safe to dispose independently of <paramref name="sample"/>.</returns>
    Tensor ScaleModelInput(Tensor sample, Tensor timestep);

    /// <summary>One reverse step: from the model output at <paramref name="timestep"/> and x_t, predicts the previous sample.</summary>
    /// <param name="modelOutput">What the UNet predicted (ε or v, per <see cref="SchedulerConfig.PredictionType"/>).</param>
    /// <param name="timestep">The element of <see cref="Timesteps"/> the model was evaluated at.</param>
    /// <param name="sample">The current latents x_t.</param>
    /// <param name="generator">Source of the step's noise for stochastic samplers (DDPM, Euler ancestral, DDIM with η &gt; 0); null uses torch's global generator. Ignored by deterministic samplers.</param>
    /// <param name="noise">The standard-normal draw to use instead of drawing from <paramref name="generator"/> (same shape as <paramref name="sample"/>); give one or the other.</param>
    SchedulerStepOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, torch.Generator? generator = null, Tensor? noise = null);
}
