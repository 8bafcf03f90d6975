using System.Diagnostics;
using SdPipeline.Data;
using SdPipeline.Images;
using SdPipeline.Latents;
using SdPipeline.Models.Vae;
using SdPipeline.Progress;
using SdPipeline.Training;
using SdPipeline.Training.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.BaseModel;

/// <summary>What training builtin:tiny's autoencoder achieved.</summary>
/// <param name="Steps">Optimizer steps.</param>
/// <param name="ReconstructionError">Mean squared error of the last steps, in [-1, 1] pixel units.</param>
/// <param name="ScalingFactor">1 / std of the latents: the scaling_factor written into the VAE config.</param>
/// <param name="Seconds">Wall time.</param>
public sealed record AutoencoderTraining(int Steps, double ReconstructionError, double ScalingFactor, double Seconds);

/// <summary>
/// Trains builtin:tiny's autoencoder on generated shapes, so its latents and decoded images mean something:
/// a randomly initialised VAE would make the UNet learn to denoise a random projection and decode noise.
/// The loss is SD's minus its perceptual and adversarial terms — reconstruction (MSE) plus a small KL
/// (weight 1e-6, as the KL-f8 autoencoder) — and the scaling factor is then set, as Stable Diffusion's was,
/// to 1 / std of the latents, so the diffusion model sees unit-variance latents.
/// </summary>
public static class TinyAutoencoderTrainer
{
    private const double KlWeight = 1e-6;

    /// <summary>Trains <paramref name="vae"/> in place for <paramref name="steps"/> steps of <paramref name="batchSize"/> images.</summary>
    public static AutoencoderTraining Train(AutoencoderKL vae, int steps, int batchSize, int seed, IProgressSink progress, CancellationToken cancellation)
    {
        var clock = Stopwatch.StartNew();
        // A separate stream from the dataset's (seed + 7919): the autoencoder never sees the training or held-out images.
        var options = new ShapesOptions(Seed: seed + 7919, Count: steps * batchSize, HeldoutCount: 0, ImageSize: BuiltinTiny.ImageSize);
        var images = ShapesGenerator.Generate(options, options.Count).Select(c => ImageCodec.DecodeRgb(c.ReadImage!())).ToList();
        var parameters = vae.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        using var optimizer = new AdamW(parameters, weightDecay: 0);
        using var generator = new torch.Generator((ulong)seed);
        vae.train();
        double recent = 0;
        using (var bar = progress.Start("train builtin:tiny autoencoder", steps))
        {
            for (int step = 0; step < steps; step++)
            {
                cancellation.ThrowIfCancellationRequested();
                using var scope = torch.NewDisposeScope();
                var batch = Batch(images.Skip(step * batchSize).Take(batchSize).ToList());
                using var posterior = vae.Encode(batch);
                var reconstruction = vae.Decode(posterior.Sample(generator));
                var mse = nn.functional.mse_loss(reconstruction, batch);
                var kl = 0.5 * (posterior.Mean.pow(2) + posterior.Var - 1 - posterior.LogVar).sum([1, 2, 3]).mean();
                (mse + KlWeight * kl).backward();
                double lr = 2e-3 * LrSchedules.Multiplier("cosine", step, steps / 20, steps);
                optimizer.Step(lr);
                optimizer.ZeroGrad();
                double value = mse.item<float>();
                recent = step == 0 ? value : 0.9 * recent + 0.1 * value;
                bar.Advance(1);
            }
        }
        vae.eval();
        return new AutoencoderTraining(steps, recent, ScalingFactor(vae, images.Take(256).ToList()), clock.Elapsed.TotalSeconds);
    }

    /// <summary>1 / std of the posterior means of <paramref name="images"/>.</summary>
    private static double ScalingFactor(AutoencoderKL vae, IReadOnlyList<RgbImage> images)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var posterior = vae.Encode(Batch(images));
        return 1.0 / posterior.Mean.std().item<float>();
    }

    private static Tensor Batch(IReadOnlyList<RgbImage> images)
    {
        int size = BuiltinTiny.ImageSize;
        var crop = new CropBox(0, 0, size, size);
        var data = images.SelectMany(image => ImagePreprocessor.ToTensorData(image, crop, flip: false)).ToArray();
        return torch.tensor(data, [images.Count, 3, size, size]);
    }
}
