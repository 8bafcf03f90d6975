using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification;

/// <summary>
/// Our tensor against the reference, under one tolerance. All arithmetic is float64 on the CPU, whatever the
/// tensors' dtype and device.
/// </summary>
/// <param name="Name">What was compared (a tensor name of the fixture).</param>
/// <param name="MaxAbsError">max |ours − reference|.</param>
/// <param name="MaxRelError">
/// max |ours − reference| / abs max of the reference; for a <see cref="ToleranceKind.RelativePerElement"/> tolerance,
/// max over the elements of |ours − reference| / |reference| instead.
/// </param>
/// <param name="Tolerance">The bound.</param>
/// <param name="Passed">Whether the bound holds (false when either tensor holds NaN where the other does not).</param>
/// <param name="Usage">The measured error as a share of what the tolerance allows (≤ 1 passes): picks the worst of a row's comparisons.</param>
/// <param name="Detail">For a failure: where the largest difference is and the two values there.</param>
public sealed record TensorComparison(string Name, double MaxAbsError, double MaxRelError, ParityTolerance Tolerance, bool Passed, double Usage, string? Detail)
{
    /// <summary>Compares <paramref name="actual"/> with <paramref name="expected"/> element by element.</summary>
    /// <exception cref="ParityFixtureException">The shapes differ.</exception>
    public static TensorComparison Of(string name, Tensor actual, Tensor expected, ParityTolerance tolerance)
    {
        if (!actual.shape.SequenceEqual(expected.shape))
            throw new ParityFixtureException($"{name}: ours has shape {Shape(actual.shape)}, the reference {Shape(expected.shape)}");

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var a = actual.detach().cpu().to(ScalarType.Float64);
        var b = expected.detach().cpu().to(ScalarType.Float64);
        long count = b.numel();
        if (count == 0) return new TensorComparison(name, 0, 0, tolerance, true, 0, null);

        var difference = (a - b).abs();
        // NaN in one tensor and not the other is a failure; NaN in both at the same place is equal.
        var bothNaN = a.isnan().logical_and(b.isnan());
        difference = difference.masked_fill(bothNaN, 0);
        var anyNaN = difference.isnan().any().item<bool>();
        double maxAbs = anyNaN ? double.NaN : difference.max().item<double>();
        double absMax = b.abs().masked_fill(b.isnan(), 0).max().item<double>();
        double relToMax = Ratio(maxAbs, absMax);

        double maxRel = relToMax, usage;
        string? detail = null;
        switch (tolerance.Kind)
        {
            case ToleranceKind.Absolute:
                long over = tolerance.Value == 0
                    ? difference.gt(0).sum().item<long>()
                    : difference.gt(tolerance.Value).sum().item<long>();
                long allowed = (long)Math.Floor(tolerance.OutlierFraction * count);
                if (over == 0) usage = Ratio(maxAbs, tolerance.Value);
                else if (over <= allowed && maxAbs <= tolerance.OutlierLimit) usage = Math.Max((double)over / allowed, maxAbs / tolerance.OutlierLimit);
                else usage = double.PositiveInfinity;
                if (over > 0 && tolerance.OutlierFraction > 0)
                    detail = $"{over} of {count} elements over {Number(tolerance.Value)} ({allowed} may be, up to {Number(tolerance.OutlierLimit)})";
                break;
            case ToleranceKind.AbsoluteOrRelativeToMax:
                usage = Ratio(maxAbs, tolerance.Value * Math.Max(1, absMax));
                break;
            case ToleranceKind.RelativeToMax:
                usage = Ratio(relToMax, tolerance.Value);
                break;
            case ToleranceKind.RelativePerElement:
                // 0/0 (an exact zero, such as the sigma appended at the end of a schedule) is a match.
                var relative = (difference / b.abs()).masked_fill(difference.eq(0), 0);
                maxRel = anyNaN ? double.NaN : relative.max().item<double>();
                usage = Ratio(maxRel, tolerance.Value);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance.Kind, "unknown tolerance kind");
        }

        bool passed = usage <= 1;
        if (!passed) detail = Join(detail, WhereWorst(a, b, difference));
        return new TensorComparison(name, maxAbs, maxRel, tolerance, passed, double.IsNaN(usage) ? double.PositiveInfinity : usage, detail);
    }

    /// <summary>A scalar against a scalar reference.</summary>
    public static TensorComparison Of(string name, double actual, double expected, ParityTolerance tolerance)
    {
        using var a = torch.tensor(actual, ScalarType.Float64);
        using var b = torch.tensor(expected, ScalarType.Float64);
        return Of(name, a, b, tolerance);
    }

    private static double Ratio(double numerator, double denominator) =>
        numerator == 0 ? 0 : denominator == 0 ? double.PositiveInfinity : numerator / denominator;

    private static string WhereWorst(Tensor a, Tensor b, Tensor difference)
    {
        var flat = difference.flatten();
        long index = flat.isnan().any().item<bool>() ? flat.isnan().nonzero()[0, 0].item<long>() : flat.argmax().item<long>();
        double ours = a.flatten()[index].item<double>(), reference = b.flatten()[index].item<double>();
        string at = a.dim() == 0 ? "" : $" at [{string.Join(",", Unravel(index, a.shape))}]";
        return $"largest difference{at}: ours {Number(ours)}, reference {Number(reference)}";
    }

    private static long[] Unravel(long index, long[] shape)
    {
        var position = new long[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            position[d] = index % shape[d];
            index /= shape[d];
        }
        return position;
    }

    private static string? Join(string? first, string second) => first is null ? second : $"{first}; {second}";

    private static string Shape(long[] shape) => $"[{string.Join(", ", shape)}]";

    internal static string Number(double value) => value.ToString("G4", CultureInfo.InvariantCulture);
}
