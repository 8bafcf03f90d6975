using SdPipeline.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>The noise, timesteps and noisy input of one training step, before the model runs.</summary>
/// <param name="NoisyLatents">The model input.</param>
/// <param name="Timesteps">int64 timesteps [B].</param>
/// <param name="Target">What the model should predict (noise, or v).</param>
public sealed record NoisedBatch(Tensor NoisyLatents, Tensor Timesteps, Tensor Target);

/// <summary>
/// The training objective of diffusers' <c>train_text_to_image.py</c>: draw noise (with the optional
/// <c>noise_offset</c> and <c>input_perturbation</c>), uniform timesteps, noise the latents, choose the
/// target by prediction type, and compute the MSE in float32 — optionally with min-SNR-γ weighting
/// (Hang et al. 2023). Random draws come from one generator in the script's order, so a seed reproduces a run.
/// </summary>
public sealed class TrainingObjective(NoiseSchedule schedule, string predictionType, double noiseOffset = 0, double inputPerturbation = 0, double snrGamma = 0)
{
    /// <summary>epsilon or v_prediction.</summary>
    public string PredictionType { get; } = predictionType is PredictionTypes.Epsilon or PredictionTypes.VPrediction
        ? predictionType
        : throw new Config.ConfigException($"train.prediction_type '{predictionType}' is not one of epsilon, v_prediction");

    /// <summary>Draws noise and timesteps for <paramref name="latents"/> and builds the model input and target.</summary>
    public NoisedBatch Noise(Tensor latents, Generator generator)
    {
        var noise = torch.randn(latents.shape, dtype: latents.dtype, generator: generator).to(latents.device);
        if (noiseOffset != 0)
            noise = noise + noiseOffset * torch.randn([latents.shape[0], latents.shape[1], 1, 1], generator: generator).to(latents.device);
        var inputNoise = inputPerturbation != 0
            ? noise + inputPerturbation * torch.randn(noise.shape, generator: generator).to(latents.device)
            : noise;
        var timesteps = torch.randint(0, schedule.NumTrainTimesteps, [latents.shape[0]], dtype: ScalarType.Int64, generator: generator).to(latents.device);
        return Build(latents, noise, inputNoise, timesteps);
    }

    /// <summary>The model input and target for given noise and timesteps (held-out evaluation, parity tests).</summary>
    public NoisedBatch Build(Tensor latents, Tensor noise, Tensor inputNoise, Tensor timesteps)
    {
        var noisy = schedule.AddNoise(latents, inputNoise, timesteps);
        var target = PredictionType == PredictionTypes.Epsilon ? noise : schedule.GetVelocity(latents, noise, timesteps);
        return new NoisedBatch(noisy, timesteps, target);
    }

    /// <summary>The loss: float32 MSE, mean over everything, or min-SNR-γ-weighted per sample then averaged.</summary>
    public Tensor Loss(Tensor prediction, Tensor target, Tensor timesteps)
    {
        var pred = prediction.to(ScalarType.Float32);
        var tgt = target.to(ScalarType.Float32);
        if (snrGamma <= 0) return nn.functional.mse_loss(pred, tgt, nn.Reduction.Mean);

        var (_, weights) = MinSnrWeights(timesteps);
        var perSample = nn.functional.mse_loss(pred, tgt, nn.Reduction.None).mean([1, 2, 3]);
        return (perSample * weights).mean();
    }

    /// <summary>SNR(t) and the min-SNR-γ loss weights <c>min(snr, γ) / snr</c> (ε) or <c>/ (snr + 1)</c> (v) (arXiv:2303.09556).</summary>
    /// <exception cref="InvalidOperationException">The objective has no min-SNR weighting (γ ≤ 0).</exception>
    public (Tensor Snr, Tensor Weights) MinSnrWeights(Tensor timesteps)
    {
        if (snrGamma <= 0) throw new InvalidOperationException("this objective has no min-SNR weighting (snr_gamma is 0)");
        var snr = schedule.ComputeSnr(timesteps);
        var weights = torch.stack([snr, torch.full_like(snr, snrGamma)], dim: 1).min(dim: 1).values;
        return (snr, PredictionType == PredictionTypes.Epsilon ? weights / snr : weights / (snr + 1));
    }
}
