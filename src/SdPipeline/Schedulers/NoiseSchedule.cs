using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>
/// The forward (training) diffusion process q(x_t | x_0) of a <see cref="SchedulerConfig"/>: βₜ, αₜ = 1 − βₜ and
/// ᾱₜ = ∏ αₛ, computed in float32 exactly as diffusers computes them, plus the three functions training needs:
/// <see cref="AddNoise"/>, <see cref="GetVelocity"/> and <see cref="ComputeSnr"/>.
/// </summary>
/// <remarks>
/// Mirrors the table set-up of diffusers' <c>DDPMScheduler.__init__</c> (and every other scheduler's),
/// <c>DDPMScheduler.add_noise</c>, <c>DDPMScheduler.get_velocity</c> and <c>training_utils.compute_snr</c>.
/// The tables live on the CPU; they are moved to the samples' device per call, as diffusers does.
/// </remarks>
public sealed class NoiseSchedule : IDisposable
{
    /// <summary>Builds the tables of <paramref name="config"/>.</summary>
    /// <exception cref="SchedulerConfigException">The config is invalid or asks for zero-terminal-SNR rescaling.</exception>
    public NoiseSchedule(SchedulerConfig config)
    {
        config.Validate();
        // Every sampler and the training objective read these tables, so no other scheduler name is a way round it.
        if (config.RescaleBetasZeroSnr)
            throw new SchedulerConfigException($"{config.Source}: rescale_betas_zero_snr = true (zero terminal SNR, arXiv:2305.08891) is not supported: " +
                "SdPipeline neither trains nor samples with rescaled betas, and a model trained with them gives wrong results without them; use a model whose schedule does not rescale");
        NumTrainTimesteps = config.NumTrainTimesteps;

        using var scope = NewDisposeScope();
        Tensor betas;
        if (config.TrainedBetas is not null)
            betas = tensor(config.TrainedBetas.ToArray(), ScalarType.Float32);
        else
        {
            betas = config.BetaSchedule switch
            {
                "linear" => linspace(config.BetaStart, config.BetaEnd, NumTrainTimesteps, ScalarType.Float32),
                // This schedule is very specific to the latent diffusion model: linear in √β, squared in float32.
                "scaled_linear" => linspace(Math.Sqrt(config.BetaStart), Math.Sqrt(config.BetaEnd), NumTrainTimesteps, ScalarType.Float32).pow(2),
                // Glide cosine schedule.
                "squaredcos_cap_v2" => tensor(CosineBetas(NumTrainTimesteps), ScalarType.Float32),
                _ => throw new SchedulerConfigException($"{config.Source}: beta_schedule '{config.BetaSchedule}' is not supported; valid values: {string.Join(", ", SchedulerConfig.BetaSchedules)}"),
            };
        }
        var alphas = 1.0 - betas;
        // torch.cumprod accumulates in double on the CPU and rounds each partial product to float32.
        var alphasCumprod = cumprod(alphas, 0);

        Betas = betas.DetachFromDisposeScope();
        Alphas = alphas.DetachFromDisposeScope();
        AlphasCumprod = alphasCumprod.DetachFromDisposeScope();
        AlphasCumprodValues = AlphasCumprod.data<float>().ToArray();
    }

    /// <summary>Number of training timesteps N; valid timesteps are 0 … N − 1.</summary>
    public int NumTrainTimesteps { get; }

    /// <summary>βₜ, float32 [N].</summary>
    public Tensor Betas { get; }

    /// <summary>αₜ = 1 − βₜ, float32 [N].</summary>
    public Tensor Alphas { get; }

    /// <summary>ᾱₜ = α₀·α₁⋯αₜ, float32 [N].</summary>
    public Tensor AlphasCumprod { get; }

    /// <summary>ᾱₜ as host floats, for the schedulers' scalar coefficient arithmetic.</summary>
    internal float[] AlphasCumprodValues { get; }

    /// <summary>
    /// x_t = √ᾱₜ · x₀ + √(1 − ᾱₜ) · ε (equation (4) of the DDPM paper): noises each sample of the batch to its timestep.
    /// </summary>
    /// <param name="originalSamples">x₀, [B, …].</param>
    /// <param name="noise">ε, same shape.</param>
    /// <param name="timesteps">Integer timesteps in 0 … N − 1, [B] (or one, broadcast to the batch).</param>
    public Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var (sqrtAlphaProd, sqrtOneMinusAlphaProd) = Coefficients(originalSamples, timesteps);
        return (sqrtAlphaProd * originalSamples + sqrtOneMinusAlphaProd * noise).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The v-prediction target v = √ᾱₜ · ε − √(1 − ᾱₜ) · x₀ (Salimans &amp; Ho, arXiv:2202.00512).
    /// </summary>
    /// <param name="sample">x₀, [B, …].</param>
    /// <param name="noise">ε, same shape.</param>
    /// <param name="timesteps">Integer timesteps in 0 … N − 1, [B].</param>
    public Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var (sqrtAlphaProd, sqrtOneMinusAlphaProd) = Coefficients(sample, timesteps);
        return (sqrtAlphaProd * noise - sqrtOneMinusAlphaProd * sample).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Signal-to-noise ratio SNR(t) = (√ᾱₜ / √(1 − ᾱₜ))² per timestep (arXiv:2303.09556), float32, same shape and
    /// device as <paramref name="timesteps"/>; the min-SNR loss weighting divides by it.
    /// </summary>
    public Tensor ComputeSnr(Tensor timesteps)
    {
        long[] steps = TimestepValues(timesteps);
        var snr = new float[steps.Length];
        for (int i = 0; i < steps.Length; i++)
        {
            float alpha = MathF.Sqrt(AlphasCumprodValues[steps[i]]);
            float sigma = MathF.Sqrt(1f - AlphasCumprodValues[steps[i]]);
            float ratio = alpha / sigma;
            snr[i] = ratio * ratio;
        }
        return tensor(snr, timesteps.shape, ScalarType.Float32).to(timesteps.device);
    }

    /// <summary>Frees the tables.</summary>
    public void Dispose()
    {
        Betas.Dispose();
        Alphas.Dispose();
        AlphasCumprod.Dispose();
    }

    /// <summary>The noise level of the variance-exploding view, σₜ = √((1 − ᾱₜ)/ᾱₜ), t = 0 … N − 1, in float32 (Euler, DPM-Solver).</summary>
    internal float[] SigmaValues() => AlphasCumprodValues.Select(a => MathF.Sqrt((1f - a) / a)).ToArray();

    // √ᾱₜ and √(1 − ᾱₜ) per sample, shaped [B, 1, 1, …] to broadcast, in the samples' dtype and device.
    // Computed on the host with IEEE float32 square roots: libtorch's MKL-backed sqrt is off by one ulp for a few
    // ᾱ values (6 of SD's 1000), which the reference build (correctly rounded) is not.
    private (Tensor SqrtAlphaProd, Tensor SqrtOneMinusAlphaProd) Coefficients(Tensor samples, Tensor timesteps)
    {
        long[] steps = TimestepValues(timesteps);
        var shape = new long[samples.dim()];
        Array.Fill(shape, 1L);
        shape[0] = steps.Length;
        Tensor Column(Func<float, double> coefficient, Func<float, float> coefficient32) =>
            samples.dtype == ScalarType.Float64
                ? tensor(steps.Select(t => coefficient(AlphasCumprodValues[t])).ToArray(), shape, ScalarType.Float64).to(samples.device)
                : tensor(steps.Select(t => coefficient32(AlphasCumprodValues[t])).ToArray(), shape, ScalarType.Float32).to(samples.device).to_type(samples.dtype);
        return (Column(a => Math.Sqrt(a), a => MathF.Sqrt(a)), Column(a => Math.Sqrt(1.0 - a), a => MathF.Sqrt(1f - a)));
    }

    private long[] TimestepValues(Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        long[] steps = timesteps.detach().cpu().to_type(ScalarType.Int64).flatten().data<long>().ToArray();
        foreach (long t in steps)
            if (t < 0 || t >= NumTrainTimesteps)
                throw new ArgumentOutOfRangeException(nameof(timesteps), t, $"training timesteps lie in 0 … {NumTrainTimesteps - 1}");
        return steps;
    }

    // diffusers' betas_for_alpha_bar with the "cosine" transform: βᵢ = min(1 − ᾱ((i+1)/N) / ᾱ(i/N), 0.999),
    // ᾱ(t) = cos²((t + 0.008) / 1.008 · π/2), computed in float64.
    private static double[] CosineBetas(int count)
    {
        static double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
        var betas = new double[count];
        for (int i = 0; i < count; i++)
        {
            double t1 = (double)i / count;
            double t2 = (double)(i + 1) / count;
            betas[i] = Math.Min(1 - AlphaBar(t2) / AlphaBar(t1), 0.999);
        }
        return betas;
    }
}
