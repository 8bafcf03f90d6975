using SdPipeline.Models.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Benchmarks;

/// <summary>
/// <c>sdpipe bench vae</c>: encode (image → posterior mode) and decode (latents → image) of a VAE with random weights,
/// no_grad, per latent size, against the fp32 matmul ceiling measured in the same run; plus encode+decode images/s.
/// </summary>
public static class VaeBenchmark
{
    /// <summary>
    /// Random inputs of one size: images in [−1, 1] of the pixels <paramref name="size"/> latents stand for, and latents
    /// [batch, C, size, size].
    /// </summary>
    internal static (Tensor Image, Tensor Latents) Inputs(AutoencoderKLConfig config, int batch, int size, Generator generator, Device device)
    {
        int pixels = size * config.VaeScaleFactor;
        return (torch.rand([batch, config.InChannels, pixels, pixels], generator: generator, device: device) * 2 - 1,
            torch.randn([batch, config.LatentChannels, size, size], generator: generator, device: device));
    }

    /// <summary>Runs the benchmark; sizes are latent sizes (images are <c>2^(blocks−1)</c>× larger: 8× for SD).</summary>
    /// <param name="options">Sizes, batch, repeats, seed, config.</param>
    /// <param name="device">Where to run (after the threads have been set).</param>
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
        vae.eval(); // as the latents stage and sampling run it
        long parameters = vae.parameters().Sum(p => p.numel());

        var harness = new BenchmarkHarness(options.Warmup, options.Repeats, device, log, cancellation);
        var measured = new List<(int Size, string Case, Timing Timing, FlopCount Flops)>();
        using (torch.no_grad())
        {
            foreach (int size in options.Sizes)
            {
                using var scope = torch.NewDisposeScope();
                int pixels = size * scale;
                using var generator = new Generator((ulong)options.Seed, device);
                var (image, latents) = Inputs(config, options.Batch, size, generator, device);

                void Encode() => vae.Encode(image).Mode();
                void Decode() => vae.Decode(latents);
                var encodeTiming = harness.Measure($"vae {pixels}px encode", Encode);
                var decodeTiming = harness.Measure($"vae {pixels}px decode", Decode);

                // Counted after the timed cases, whose peaks would otherwise include the memory the counting passes leave with the allocator.
                FlopCount encodeFlops, decodeFlops;
                using (torch.NewDisposeScope())
                {
                    encodeFlops = FlopCounter.Count(vae, Encode, shapesOnly: true);
                    decodeFlops = FlopCounter.Count(vae, Decode, shapesOnly: true);
                }
                log?.Invoke($"vae {pixels}px: encode {encodeFlops.Forward / 1e9:0.0} GFLOP, decode {decodeFlops.Forward / 1e9:0.0} GFLOP");
                measured.Add((size, "encode", encodeTiming, encodeFlops));
                measured.Add((size, "decode", decodeTiming, decodeFlops));
            }
        }

        var after = MatmulCeiling.MeasureLogged(device, options.MatmulSize, log, "after");
        double ceiling = BenchmarkReport.PooledMatmulGflops(before, after);
        var rows = new List<BenchmarkRow>();
        for (int i = 0; i < measured.Count; i += 2)
        {
            var (size, _, encodeTiming, encodeFlops) = measured[i];
            var (_, _, decodeTiming, decodeFlops) = measured[i + 1];
            var encode = BenchmarkRow.Measured("vae", "encode", size, size * scale, options.Batch, harness, encodeTiming, encodeFlops, ceiling);
            var decode = BenchmarkRow.Measured("vae", "decode", size, size * scale, options.Batch, harness, decodeTiming, decodeFlops, ceiling);
            rows.AddRange([encode, decode, BenchmarkRow.Sum("encode_decode", encode, decode, ceiling)]);
        }
        return BenchmarkReport.Of("vae", options, machine, parameters, before, after, rows);
    }
}
