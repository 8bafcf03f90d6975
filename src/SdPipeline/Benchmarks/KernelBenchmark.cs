using System.Diagnostics;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Benchmarks;

/// <summary>What <c>sdpipe bench kernels</c> runs.</summary>
public sealed record KernelBenchmarkOptions
{
    /// <summary>The models whose inference is examined: <c>unet</c> (one forward) and <c>vae</c> (encode and decode).</summary>
    public IReadOnlyList<string> Models { get; init; } = ["unet", "vae"];

    /// <summary>Latent sizes (square; pixels are 8× for Stable Diffusion).</summary>
    public IReadOnlyList<int> Sizes { get; init; } = [32, 64];

    /// <summary>The UNet's batch: 2 is one classifier-free-guidance sampling step.</summary>
    public int UnetBatch { get; init; } = 2;

    /// <summary>The VAE's batch: the latents stage encodes one image at a time.</summary>
    public int VaeBatch { get; init; } = 1;

    /// <summary>Untimed runs of each path before the timed rounds (the first also gives the output compared).</summary>
    public int Warmup { get; init; } = 1;

    /// <summary>Timed rounds; each runs every path once, in an order turned by one each round.</summary>
    public int Repeats { get; init; } = 5;

    /// <summary>Seed of the random weights and inputs.</summary>
    public int Seed { get; init; }

    /// <summary>A diffusers <c>config.json</c> for the one model in <see cref="Models"/>; null for SD 1.5's.</summary>
    public string? ConfigFile { get; init; }

    /// <summary>Checks the values, naming the first bad one.</summary>
    /// <exception cref="ArgumentException">A value out of range.</exception>
    public void Validate()
    {
        if (Models.Count == 0) throw new ArgumentException("at least one model is needed (unet, vae)");
        foreach (string model in Models)
            if (model is not ("unet" or "vae")) throw new ArgumentException($"model '{model}' is not one of unet, vae");
        if (ConfigFile is not null && Models.Count != 1) throw new ArgumentException("a config file describes one model: name it alone (--models unet or --models vae)");
        if (Sizes.Count == 0) throw new ArgumentException("at least one size is needed (e.g. 32,64)");
        foreach (int size in Sizes)
            if (size < 1) throw new ArgumentException($"size {size} must be a positive number of latent pixels");
        if (UnetBatch < 1 || VaeBatch < 1) throw new ArgumentException("the batch must be at least 1");
        if (Warmup < 0) throw new ArgumentException($"warm-up {Warmup} cannot be negative");
        if (Repeats < 1) throw new ArgumentException($"repeats {Repeats} must be at least 1");
    }
}

/// <summary>
/// <c>sdpipe bench kernels</c>: whether the rules that pick the models' inference kernels (<see cref="Convolutions"/>,
/// <see cref="Norms"/>, <see cref="Attention"/>) pick the fastest path on this CPU. The rules were measured on one Intel
/// Xeon; another CPU runs other kernels inside libtorch. One forward (UNet) or encode and decode (VAE) with random
/// weights is watched (<see cref="KernelChoices"/>) to list every distinct call, with how often the model makes it;
/// each is then run by every path that can compute it, on random inputs of its shape and layout, the paths interleaved
/// round by round so that a machine's changing load falls on all of them alike. Each path's output is compared with the
/// layer's own (libtorch's), so a kernel that computes wrongly on this CPU is found too.
/// </summary>
public static class KernelBenchmark
{
    /// <summary>The largest difference from libtorch's output, relative to its largest magnitude, that counts as float32 rounding.</summary>
    /// <remarks>As the numerics self-check's float32 tolerance; the kernels measured 1e-7 to 4e-6 on the Xeon (docs/performance.md).</remarks>
    public const double Tolerance = 1e-4;

    /// <summary>A chosen path up to this fraction slower than the fastest counts as the fastest (the timing's noise).</summary>
    public const double Margin = 0.05;

    /// <summary>Runs the benchmark.</summary>
    /// <param name="options">Models, sizes, batches, rounds.</param>
    /// <param name="device">The CPU (the kernels are CPU kernels), after the threads have been set.</param>
    /// <param name="log">Progress lines; null for silence.</param>
    /// <param name="cancellation">Stops between cases; no report is made then.</param>
    /// <exception cref="DiffusersConfigException">The config file cannot be read or is not supported.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was requested.</exception>
    public static KernelReport Run(KernelBenchmarkOptions options, Device device, Action<string>? log = null, CancellationToken cancellation = default)
    {
        options.Validate();
        var machine = MachineInfo.Capture(device);
        var cases = new List<KernelCase>();
        foreach (string model in options.Models)
        {
            cancellation.ThrowIfCancellationRequested();
            if (model == "unet") cases.AddRange(Unet(options, device, log, cancellation));
            else cases.AddRange(Vae(options, device, log, cancellation));
        }
        return new KernelReport
        {
            CreatedUtc = DateTime.UtcNow,
            Machine = machine,
            ModelConfig = options.ConfigFile ?? "sd15",
            OneDnn = OneDnn.Enabled,
            Seed = options.Seed,
            Repeats = options.Repeats,
            Cases = cases,
        };
    }

    private static List<KernelCase> Unet(KernelBenchmarkOptions options, Device device, Action<string>? log, CancellationToken cancellation)
    {
        var config = options.ConfigFile is null ? Sd15Configs.Unet : UNet2DConditionConfig.Load(options.ConfigFile);
        log?.Invoke("building the UNet with random weights ...");
        torch.manual_seed(options.Seed);
        using var unet = new UNet2DConditionModel(config, device);
        unet.eval(); // as sampling runs it
        var cases = new List<KernelCase>();
        foreach (int size in options.Sizes)
        {
            using var scope = torch.NewDisposeScope();
            using var generator = new Generator((ulong)options.Seed, device);
            var (sample, timestep, text) = UnetBenchmark.Inputs(config, options.UnetBatch, size, generator, device);
            string work = $"unet forward {size}x{size} batch {options.UnetBatch}";
            var calls = Watch(log, work, () => unet.call(sample, timestep, text));
            cases.AddRange(Measure(work, unet, calls, options, device, log, cancellation));
        }
        return cases;
    }

    private static List<KernelCase> Vae(KernelBenchmarkOptions options, Device device, Action<string>? log, CancellationToken cancellation)
    {
        var config = options.ConfigFile is null ? Sd15Configs.Vae : AutoencoderKLConfig.Load(options.ConfigFile);
        int scale = config.VaeScaleFactor;
        log?.Invoke("building the VAE with random weights ...");
        torch.manual_seed(options.Seed);
        using var vae = new AutoencoderKL(config, device);
        vae.eval(); // as the latents stage and sampling run it
        var cases = new List<KernelCase>();
        foreach (int size in options.Sizes)
        {
            using var scope = torch.NewDisposeScope();
            using var generator = new Generator((ulong)options.Seed, device);
            int pixels = size * scale;
            var (image, latents) = VaeBenchmark.Inputs(config, options.VaeBatch, size, generator, device);
            string encode = $"vae encode {pixels}px batch {options.VaeBatch}", decode = $"vae decode {pixels}px batch {options.VaeBatch}";
            var encodeCalls = Watch(log, encode, () => vae.Encode(image).Mode());
            cases.AddRange(Measure(encode, vae, encodeCalls, options, device, log, cancellation));
            var decodeCalls = Watch(log, decode, () => vae.Decode(latents));
            cases.AddRange(Measure(decode, vae, decodeCalls, options, device, log, cancellation));
        }
        return cases;
    }

    /// <summary>The kernel choices one run of <paramref name="work"/> makes, without autograd, on this thread.</summary>
    internal static List<KernelCall> Watch(Action<string>? log, string name, Action work)
    {
        log?.Invoke($"{name}: listing the kernel choices ...");
        var calls = new List<KernelCall>();
        using (torch.NewDisposeScope())
        using (torch.no_grad())
        using (KernelChoices.Watch(calls.Add))
            work();
        return calls;
    }

    /// <summary>Every distinct call among <paramref name="calls"/>, timed by each path that can make it.</summary>
    internal static List<KernelCase> Measure(string work, nn.Module model, IReadOnlyList<KernelCall> calls, KernelBenchmarkOptions options,
        Device device, Action<string>? log, CancellationToken cancellation)
    {
        var names = new Dictionary<nn.Module, string>(ReferenceEqualityComparer.Instance);
        foreach (var (name, module) in model.named_modules()) names.TryAdd(module, name);
        var cases = new List<KernelCase>();
        foreach (var group in calls.GroupBy(Signature))
        {
            cancellation.ThrowIfCancellationRequested();
            var call = group.First();
            string layer = names.GetValueOrDefault(call.Layer, call.Layer.GetName());
            var row = KernelCase.Of(work, call, layer, group.Count(), Time(call, options, device));
            if (row.Paths.All(p => p.Path != row.Chosen))
                throw new InvalidOperationException($"{work}: the path the model chose ({row.Chosen}) is not among those that can compute the call here ({string.Join(", ", row.Paths.Select(p => p.Path))})");
            log?.Invoke(row.Describe());
            cases.Add(row);
        }
        return cases;
    }

    // Calls alike for timing: the same kind of layer with the same sizes, on inputs of the same shape and layout, that
    // took the same path, so that a group's one timing stands for each call's choice.
    private static string Signature(KernelCall call) => call switch
    {
        ConvolutionCall c => $"conv {Shape(c.Convolution.weight!.shape)} bias {c.Convolution.bias is not null} stride {Shape(c.Convolution.stride)} "
            + $"padding {c.Convolution.padding_type?.ToString() ?? Shape(c.Convolution.padding ?? [])} dilation {Shape(c.Convolution.dilation)} "
            + $"input {Shape(c.InputShape)} {c.ChannelsLast} {c.Path}",
        GroupNormCall g => $"norm {g.Norm.num_groups}/{g.Norm.weight?.shape[0]} eps {g.Norm.eps} silu {g.Silu} input {Shape(g.InputShape)} {g.ChannelsLast} {g.Path}",
        AttentionCall a => $"attention heads {a.Attention.Heads} query {Shape(a.InputShape)} key {Shape(a.KeyShape)} {a.Path}",
        LinearCall l => $"linear {Shape(l.Linear.weight!.shape)} bias {l.Linear.bias is not null} input {Shape(l.InputShape)} {l.Path}",
        _ => throw new NotSupportedException(call.GetType().Name),
    };

    internal static string Shape(long[] shape) => string.Join("x", shape);

    private static List<PathTiming> Time(KernelCall call, KernelBenchmarkOptions options, Device device)
    {
        using var scope = torch.NewDisposeScope();
        // As the model ran: without autograd, which the kernels' rules ask.
        using var noGrad = torch.no_grad();
        using var generator = new Generator((ulong)options.Seed, device);
        Tensor Random(long[] shape, bool channelsLast)
        {
            if (!channelsLast) return torch.randn(shape, generator: generator, device: device);
            // [B, C, …] stored as [B, …, C]: made in that order and viewed back.
            long[] stored = [shape[0], .. shape[2..], shape[1]];
            long[] back = [0, shape.Length - 1, .. Enumerable.Range(1, shape.Length - 2).Select(d => (long)d)];
            return torch.randn(stored, generator: generator, device: device).permute(back);
        }

        // Each path, by name, as a function of the same inputs.
        List<(string Name, Func<Tensor> Run)> paths;
        switch (call)
        {
            case ConvolutionCall c:
            {
                var input = Random(c.InputShape, c.ChannelsLast);
                paths = Convolutions.Candidates(input, c.Convolution)
                    .Select(p => (Name(p), (Func<Tensor>)(() => Convolutions.Run(p, c.Convolution, input)))).ToList();
                break;
            }
            case GroupNormCall g:
            {
                var input = Random(g.InputShape, g.ChannelsLast);
                paths = Norms.Candidates(input, g.Norm)
                    .Select(p => (Name(p), (Func<Tensor>)(() => Norms.Run(p, g.Norm, input, g.Silu)))).ToList();
                break;
            }
            case AttentionCall a:
            {
                var query = Random(a.InputShape, false);
                var key = Random(a.KeyShape, false);
                var value = Random(a.KeyShape, false);
                paths = a.Attention.Candidates(query, key, value)
                    .Select(p => (Name(p), (Func<Tensor>)(() => a.Attention.Attend(p, query, key, value)))).ToList();
                break;
            }
            case LinearCall l:
            {
                var input = Random(l.InputShape, false);
                paths = Linears.Candidates(input, l.Linear)
                    .Select(p => (Name(p), (Func<Tensor>)(() => Linears.Run(p, l.Linear, input)))).ToList();
                break;
            }
            default: throw new NotSupportedException(call.GetType().Name);
        }

        // The first path is the layer's own (libtorch's): the reference the others are compared with.
        Tensor? reference = null;
        var differences = new double[paths.Count];
        for (int p = 0; p < paths.Count; p++)
        {
            for (int w = 0; w < Math.Max(1, options.Warmup); w++)
            {
                using var runScope = torch.NewDisposeScope();
                var output = paths[p].Run();
                if (w > 0) continue;
                if (p == 0)
                {
                    reference = output.contiguous().MoveToOuterDisposeScope();
                    // A reference that is not finite is reported against libtorch's own path, not blamed on the others.
                    if (!reference.isfinite().all().item<bool>()) differences[0] = double.NaN;
                }
                else differences[p] = RelativeDifference(output, reference!);
            }
        }
        var seconds = paths.Select(_ => new List<double>(options.Repeats)).ToArray();
        for (int round = 0; round < options.Repeats; round++)
        {
            for (int i = 0; i < paths.Count; i++)
            {
                int p = (i + round) % paths.Count;
                using var runScope = torch.NewDisposeScope();
                var clock = Stopwatch.StartNew();
                paths[p].Run();
                seconds[p].Add(clock.Elapsed.TotalSeconds);
            }
        }
        return paths.Select((path, p) => new PathTiming(path.Name, seconds[p], Statistics.Median(seconds[p]), differences[p])).ToList();
    }

    // Largest |output − reference| over the largest |reference|: a relative error that does not blow up near zeros.
    private static double RelativeDifference(Tensor output, Tensor reference)
    {
        double scale = reference.abs().max().item<float>();
        double difference = (output - reference).abs().max().item<float>();
        if (double.IsNaN(difference)) return double.NaN;
        return scale > 0 ? difference / scale : difference;
    }

    internal static string Name(ConvolutionPath path) => path switch
    {
        ConvolutionPath.Layer => OneDnn.Enabled ? "onednn" : "libtorch",
        ConvolutionPath.LibtorchsOwn => "libtorch",
        ConvolutionPath.Winograd => "winograd",
        ConvolutionPath.PlainWinograd => "plain_winograd",
        ConvolutionPath.ChannelsLastWinograd => "cl_winograd",
        _ => path.ToString(),
    };

    internal static string Name(GroupNormPath path) => path == GroupNormPath.Kernel ? "kernel" : "libtorch";

    internal static string Name(AttentionPath path) => path == AttentionPath.Kernel ? "kernel" : "sdpa";

    internal static string Name(LinearPath path) => path == LinearPath.Kernel ? "brgemm" : "libtorch";
}
