using SdPipeline.Images;
using SdPipeline.Latents;
using SdPipeline.Models.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Benchmarks;

/// <summary>
/// <c>sdpipe bench latents</c>: the latent cache's per-image work — the preprocessing the latents stage does (decode a
/// PNG twice the target side, PIL-exact Lanczos resize, centre crop, scale to [-1, 1]) and the VAE encode (posterior,
/// no_grad) of a VAE with random weights — per size, as images/s, against the fp32 matmul ceiling measured in the same run.
/// </summary>
public static class LatentsBenchmark
{
    /// <summary>Runs the benchmark; sizes are latent sizes (the images are 8× larger for SD: 32 = 256 px, 64 = 512 px).</summary>
    /// <param name="options">Sizes, batch, repeats, seed, config.</param>
    /// <param name="device">Where to encode (after the threads have been set); preprocessing runs on the CPU.</param>
    /// <param name="log">Progress lines; null for silence.</param>
    /// <param name="cancellation">Stops the benchmark between runs (Ctrl+C, SIGTERM); no report is made then.</param>
    /// <exception cref="Models.Shared.DiffusersConfigException">The config file cannot be read or is not supported.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was requested.</exception>
    public static BenchmarkReport Run(BenchmarkOptions options, Device device, Action<string>? log = null, CancellationToken cancellation = default)
    {
        options.Validate();
        var config = options.ConfigFile is null ? Sd15Configs.Vae : AutoencoderKLConfig.Load(options.ConfigFile);
        int scale = config.VaeScaleFactor;
        var machine = MachineInfo.Capture(device);

        var before = MatmulCeiling.MeasureLogged(device, options.MatmulSize, log);

        log?.Invoke("building the VAE with random weights ...");
        torch.manual_seed(options.Seed);
        using var vae = new AutoencoderKL(config, device);
        vae.eval();
        long parameters = vae.parameters().Sum(p => p.numel());

        var harness = new BenchmarkHarness(options.Warmup, options.Repeats, device, log, cancellation);
        var measured = new List<(int Size, Timing Preprocess, Timing Encode, FlopCount Flops)>();
        using (torch.no_grad())
        {
            foreach (int size in options.Sizes)
            {
                using var scope = torch.NewDisposeScope();
                int pixels = size * scale;
                byte[] png = SourceImage(2 * pixels, options.Seed);
                float[]? data = null;
                var preprocess = harness.Measure($"latents {pixels}px preprocess", () =>
                {
                    for (int i = 0; i < options.Batch; i++)
                        data = ImagePreprocessor.Transform(png, pixels, pixels, Interpolation.Lanczos, centerCrop: true, flip: false).Data;
                });
                var images = torch.tensor(Enumerable.Repeat(data!, options.Batch).SelectMany(d => d).ToArray(), [options.Batch, 3, pixels, pixels]).to(device);
                void Encode()
                {
                    using var posterior = vae.Encode(images);
                    posterior.Std.cpu(); // what the stage keeps, brought back as the stage does
                }
                FlopCount flops;
                using (torch.NewDisposeScope())
                    flops = FlopCounter.Count(vae, Encode, shapesOnly: true);
                var encode = harness.Measure($"latents {pixels}px encode", Encode);
                measured.Add((size, preprocess, encode, flops));
            }
        }

        var after = MatmulCeiling.MeasureLogged(device, options.MatmulSize, log, "after");
        double ceiling = BenchmarkReport.PooledMatmulGflops(before, after);
        var rows = new List<BenchmarkRow>();
        foreach (var (size, preprocessTiming, encodeTiming, flops) in measured)
        {
            var preprocess = BenchmarkRow.Phase("latents", "preprocess", size, size * scale, options.Batch, options.Warmup, preprocessTiming, flops, FlopPart.None, ceiling);
            var encode = BenchmarkRow.Phase("latents", "encode", size, size * scale, options.Batch, options.Warmup, encodeTiming, flops, FlopPart.Forward, ceiling);
            rows.AddRange([preprocess, encode, BenchmarkRow.Sum("preprocess_encode", preprocess, encode, ceiling)]);
        }
        return BenchmarkReport.Of("latents", options, machine, parameters, before, after, rows);
    }

    /// <summary>A square PNG with smooth gradients and fine noise (a photograph's mix of both), deterministic from the seed.</summary>
    public static byte[] SourceImage(int side, int seed)
    {
        var random = new Random(seed);
        var image = new RgbImage(side, side);
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                image.Set(x, y,
                    (byte)Math.Clamp(255 * x / side + random.Next(-24, 25), 0, 255),
                    (byte)Math.Clamp(255 * y / side + random.Next(-24, 25), 0, 255),
                    (byte)Math.Clamp(128 + random.Next(-64, 65), 0, 255));
        return ImageCodec.EncodePng(image);
    }
}
