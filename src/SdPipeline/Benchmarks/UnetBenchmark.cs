using SdPipeline.Models.Unet;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Benchmarks;

/// <summary>
/// <c>sdpipe bench unet</c>: forward (no_grad, eval mode) and forward+backward (MSE against zeros, gradients dropped between runs)
/// of a UNet with random weights, per latent size, against the fp32 matmul ceiling measured in the same run.
/// </summary>
public static class UnetBenchmark
{
    /// <summary>Text-embedding tokens per sample: CLIP's context length in Stable Diffusion.</summary>
    public const int TextTokens = 77;

    /// <summary>The timestep fed to every run (its value does not change the cost).</summary>
    public const long Timestep = 500;

    /// <summary>A UNet call's random inputs: noisy latents [batch, C, size, size], <see cref="Timestep"/>, text embeddings.</summary>
    internal static (Tensor Sample, Tensor Timestep, Tensor Text) Inputs(UNet2DConditionConfig config, int batch, int size, Generator generator, Device device) =>
        (torch.randn([batch, config.InChannels, size, size], generator: generator, device: device),
         torch.full([batch], Timestep, ScalarType.Int64, device),
         torch.randn([batch, TextTokens, config.CrossAttentionDim], generator: generator, device: device));

    /// <summary>Runs the benchmark.</summary>
    /// <param name="options">Sizes, batch, repeats, seed, config.</param>
    /// <param name="device">Where to run (after <see cref="Runtime.TorchRuntime.Initialise"/> has set the threads).</param>
    /// <param name="log">Progress lines; null for silence.</param>
    /// <param name="cancellation">Stops the benchmark between runs (Ctrl+C, SIGTERM); no report is made then.</param>
    /// <exception cref="Models.Shared.DiffusersConfigException">The config file cannot be read or is not supported.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was requested.</exception>
    public static BenchmarkReport Run(BenchmarkOptions options, Device device, Action<string>? log = null, CancellationToken cancellation = default)
    {
        options.Validate();
        var config = options.UnetConfig();
        var machine = MachineInfo.Capture(device);

        var before = MatmulCeiling.MeasureLogged(device, options.MatmulSize, log);

        log?.Invoke("building the UNet with random weights ...");
        torch.manual_seed(options.Seed);
        using var unet = new UNet2DConditionModel(config, device);
        long parameters = unet.parameters().Sum(p => p.numel());

        var harness = new BenchmarkHarness(options.Warmup, options.Repeats, device, log, cancellation);
        var measured = new List<(int Size, string Case, Timing Timing, FlopCount Flops, bool Backward)>();
        foreach (int size in options.Sizes)
        {
            using var scope = torch.NewDisposeScope();
            using var generator = new Generator((ulong)options.Seed, device);
            var (sample, timestep, text) = Inputs(config, options.Batch, size, generator, device);

            unet.eval(); // as sampling runs it
            var forward = harness.Measure($"unet {size}x{size} forward", () =>
            {
                using var _ = torch.no_grad();
                unet.call(sample, timestep, text);
            });
            unet.train();

            // set_to_none (PyTorch's default too): each backward allocates its gradients, as a training step does.
            var forwardBackward = harness.Measure($"unet {size}x{size} forward+backward", () =>
            {
                var output = unet.call(sample, timestep, text);
                nn.functional.mse_loss(output, torch.zeros_like(output)).backward();
            }, beforeEach: () => unet.zero_grad());
            unet.zero_grad();

            // Counted after the timed cases, whose peaks would otherwise include the memory the counting pass leaves
            // with the allocator; with autograd on, so that the count knows which layers' inputs need a gradient.
            FlopCount flops;
            using (torch.NewDisposeScope())
                flops = FlopCounter.Count(unet, () => unet.call(sample, timestep, text), shapesOnly: true);
            log?.Invoke($"unet {size}x{size}: {flops.Forward / 1e9:0.0} GFLOP forward, {flops.ForwardBackward / 1e9:0.0} GFLOP forward+backward");
            measured.Add((size, "forward", forward, flops, false));
            measured.Add((size, "forward_backward", forwardBackward, flops, true));
        }

        var after = MatmulCeiling.MeasureLogged(device, options.MatmulSize, log, "after");
        double ceiling = BenchmarkReport.PooledMatmulGflops(before, after);
        var rows = measured.Select(m => BenchmarkRow.Measured("unet", m.Case, m.Size, m.Size * 8, options.Batch, harness, m.Timing, m.Flops, ceiling, m.Backward)).ToList();
        return BenchmarkReport.Of("unet", options, machine, parameters, before, after, rows);
    }
}
