using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Numerics;

/// <summary>How one probe compared with float64: its worst relative error over the output and every gradient.</summary>
/// <param name="Probe">The operation configuration.</param>
/// <param name="Dtype">The dtype it ran in against float64.</param>
/// <param name="WorstTensor">Which tensor was furthest off (<c>output</c>, <c>grad input</c>, <c>grad weight</c>, …).</param>
/// <param name="RelativeError">max|x − x₆₄| / max|x₆₄| for that tensor; infinity when it held NaN or inf.</param>
/// <param name="Tolerance">The largest relative error the check accepts for <paramref name="Dtype"/>.</param>
public sealed record ProbeResult(OperationProbe Probe, ScalarType Dtype, string WorstTensor, double RelativeError, double Tolerance)
{
    /// <summary>Whether the operation is right in this dtype.</summary>
    public bool Passed => RelativeError <= Tolerance;

    /// <summary>One line for a person: <c>conv2d 320→4 k3 s1 p1 (float32): grad input off by 0.43 relative (NaN)</c>.</summary>
    public override string ToString() =>
        $"{Probe.Name} ({Dtype.ToString().ToLowerInvariant()}): {WorstTensor} off by " +
        (double.IsInfinity(RelativeError) ? "NaN/inf" : $"{RelativeError:0.##E+0}") + " relative";
}

/// <summary>What a run of the self-check found.</summary>
/// <param name="Results">Every probe's result, in the order run.</param>
/// <param name="Seconds">Wall time of the check.</param>
public sealed record SelfCheckReport(IReadOnlyList<ProbeResult> Results, double Seconds)
{
    /// <summary>The probes that failed.</summary>
    public IReadOnlyList<ProbeResult> Failures => [.. Results.Where(r => !r.Passed)];

    /// <summary>Whether every probe passed.</summary>
    public bool Passed => Results.All(r => r.Passed);
}

/// <summary>
/// The platform numerics self-check: each distinct operation configuration of a model, forward and backward on small
/// inputs in the training dtype against float64 on the same device, with the same inputs and upstream gradient. It
/// exists because a kernel can be silently wrong on one CPU and right on another (oneDNN's input gradient of a 3×3
/// convolution with fewer than 16 output channels on AMD EPYC Zen 5, docs/performance.md): the forward pass and
/// every other layer look right, and training just diverges.
/// </summary>
public static class NumericsSelfCheck
{
    /// <summary>
    /// The accepted relative error per dtype. Float32 against float64 on these probes measured at most 4e-7 (AMD EPYC
    /// Zen 4) and the broken kernel 0.16 to NaN (Zen 5), so 1e-4 leaves room for wider reductions on either side.
    /// Half precision rounds to 8 (bf16) or 11 (fp16) bits, about 4e-3 and 5e-4 per value; 5e-2 is still far below
    /// what a broken kernel gives.
    /// </summary>
    public static double Tolerance(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => 1e-4,
        ScalarType.BFloat16 or ScalarType.Float16 => 5e-2,
        _ => throw new ArgumentException($"the self-check compares float32, bfloat16 or float16 against float64, not {dtype}"),
    };

    /// <summary>Runs every probe in every dtype of <paramref name="dtypes"/> on <paramref name="device"/>.</summary>
    public static SelfCheckReport Run(IEnumerable<OperationProbe> probes, Device device, IReadOnlyList<ScalarType> dtypes, int seed = 0)
    {
        var clock = Stopwatch.StartNew();
        var results = new List<ProbeResult>();
        foreach (var probe in probes)
            foreach (var dtype in dtypes)
                results.Add(RunOne(probe, device, dtype, seed));
        return new SelfCheckReport(results, clock.Elapsed.TotalSeconds);
    }

    private static ProbeResult RunOne(OperationProbe probe, Device device, ScalarType dtype, int seed)
    {
        using var scope = torch.NewDisposeScope();
        using var generator = new Generator((ulong)seed);
        var inputs = probe.Inputs(generator);
        var reference = ForwardBackward(probe, inputs, device, ScalarType.Float64, upstream: null);
        var upstream = torch.randn(reference[0].shape, dtype: ScalarType.Float64, generator: generator);
        reference = ForwardBackward(probe, inputs, device, ScalarType.Float64, upstream);
        var actual = ForwardBackward(probe, inputs, device, dtype, upstream);

        string worst = "output";
        double worstError = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            double error = RelativeError(actual[i], reference[i]);
            if (error > worstError || double.IsNaN(error))
            {
                worst = i == 0 ? "output" : "grad " + probe.InputNames[i - 1];
                worstError = double.IsNaN(error) ? double.PositiveInfinity : error;
            }
        }
        return new ProbeResult(probe, dtype, worst, worstError, Tolerance(dtype));
    }

    /// <summary>[output, grad of each input], in float64 on the CPU; with no upstream gradient, the output alone.</summary>
    private static Tensor[] ForwardBackward(OperationProbe probe, Tensor[] inputs, Device device, ScalarType dtype, Tensor? upstream)
    {
        var leaves = inputs.Select(x => x.detach().to(dtype).to(device).requires_grad_(upstream is not null)).ToArray();
        using var enableGrad = torch.enable_grad(upstream is not null);
        var output = probe.Forward(leaves);
        if (upstream is null) return [output.detach().to(ScalarType.Float64).cpu()];
        output.backward([upstream.to(dtype).to(device)]);
        return [output.detach().to(ScalarType.Float64).cpu(), .. leaves.Select(x => x.grad!.to(ScalarType.Float64).cpu())];
    }

    private static double RelativeError(Tensor actual, Tensor expected)
    {
        double scale = expected.abs().max().item<double>();
        double difference = (actual - expected).abs().max().item<double>();
        if (double.IsNaN(difference) || double.IsInfinity(difference)) return double.NaN;
        return difference / Math.Max(scale, 1e-30);
    }
}
