using Newtonsoft.Json.Linq;
using SdPipeline.Models.Shared;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Numerics;

/// <summary>A kernel computes wrong results here and no workaround fixed it; the CLI exits with code 1.</summary>
public sealed class NumericsException(string message) : Errors.ActionableException(Errors.ErrorKind.Data, message);

/// <summary>What the self-check before a run found and did, for the log, the manifest and the report.</summary>
/// <param name="Probes">Operation configurations checked (per dtype).</param>
/// <param name="Failures">What was wrong before the workaround, one line each; empty when all was right.</param>
/// <param name="Workaround">The workaround in force (<c>oneDNN off</c>), or null.</param>
/// <param name="Seconds">Time the check took, re-check included.</param>
public sealed record NumericsVerdict(int Probes, IReadOnlyList<string> Failures, string? Workaround, double Seconds)
{
    /// <summary>The one line the log and the manifest carry: <see cref="Finding"/>, labelled.</summary>
    public string Line => $"numerics: {Finding}";

    /// <summary>What was found, without the log's label (the report shows it under its own).</summary>
    public string Finding => Workaround is null
        ? $"{Probes} operation configurations right against float64 ({Seconds:0.00} s)"
        : Failures.Count == 0
        ? $"{Probes} operation configurations right against float64 with {Workaround} ({Seconds:0.00} s)"
        : $"{Workaround} — {Failures.Count} operation configuration(s) were wrong with it on this CPU " +
          $"({string.Join("; ", Failures.Take(3))}{(Failures.Count > 3 ? "; …" : "")}), all {Probes} right without it ({Seconds:0.00} s)";

    /// <summary>The verdict as the train stage's summary records it.</summary>
    public JObject ToJson() => new()
    {
        ["probes"] = Probes,
        ["failures"] = new JArray(Failures),
        ["workaround"] = Workaround,
        ["seconds"] = Seconds, // unrounded: Line rounds it once, so a verdict read back prints the same line
        ["line"] = Line,
    };

    /// <summary>Reads <see cref="ToJson"/> back; null when the summary has none (a run before the self-check existed).</summary>
    public static NumericsVerdict? FromJson(JToken? json) => json is JObject o
        ? new NumericsVerdict(o.Value<int>("probes"), [.. o["failures"]?.Values<string>().OfType<string>() ?? []], o.Value<string?>("workaround"), o.Value<double>("seconds"))
        : null;
}

/// <summary>
/// Runs the self-check before a run and, when a kernel is wrong, routes around it: on the CPU with
/// <c>runtime.onednn=auto</c> it turns oneDNN off for the process (libtorch's own convolution path) and checks again.
/// A machine whose kernels are right keeps oneDNN: the fast path is never switched off where it is correct.
/// </summary>
public static class NumericsGuard
{
    /// <summary>The values of <c>runtime.onednn</c>.</summary>
    public static IReadOnlyList<string> OneDnnSettings { get; } = ["auto", "on", "off"];

    /// <summary>Checks <paramref name="probes"/> and makes the process compute them right, or throws <see cref="NumericsException"/>.</summary>
    /// <param name="probes">The operation configurations of the models about to run.</param>
    /// <param name="device">Where they will run.</param>
    /// <param name="dtypes">The dtypes they will run in (float32, plus the autocast dtype under mixed precision).</param>
    /// <param name="oneDnn"><c>auto</c> (the check decides), <c>on</c> (keep oneDNN; a wrong kernel stops the run), <c>off</c>.</param>
    /// <param name="log">Where the one-line verdict goes.</param>
    /// <param name="offUnderAuto">
    /// Why libtorch's own convolutions are the faster path for this work, or null: under <c>auto</c> on the CPU oneDNN is
    /// then turned off before the check (which checks the path that will run).
    /// </param>
    public static NumericsVerdict Ensure(IReadOnlyList<OperationProbe> probes, Device device, IReadOnlyList<ScalarType> dtypes, string oneDnn, Action<string> log,
        string? offUnderAuto = null)
    {
        bool cpu = device.type == DeviceType.CPU;
        bool preferOff = cpu && oneDnn == "auto" && offUnderAuto is not null;
        if (cpu && (oneDnn == "off" || preferOff)) OneDnn.TrySetEnabled(false);
        string? forced = cpu && oneDnn == "off" ? "oneDNN off (runtime.onednn=off)"
            : preferOff && !OneDnn.Enabled ? $"oneDNN off ({offUnderAuto})" : null;

        var first = NumericsSelfCheck.Run(probes, device, dtypes);
        if (first.Passed)
        {
            var verdict = new NumericsVerdict(first.Results.Count, [], forced, first.Seconds);
            log(verdict.Line);
            return verdict;
        }

        string[] failures = [.. first.Failures.Select(f => f.ToString())];
        string listed = string.Join("; ", failures);
        if (!cpu || oneDnn != "auto" || !OneDnn.Enabled || !OneDnn.TrySetEnabled(false))
            throw new NumericsException(
                $"numerics self-check: {failures.Length} of {first.Results.Count} operation configurations compute wrong results on this {(cpu ? "CPU" : "device")} " +
                $"against float64: {listed}. " + (cpu && oneDnn == "on"
                    ? "runtime.onednn=on keeps oneDNN, whose kernel is the usual cause: set runtime.onednn=auto to route around it."
                    : "No workaround is known for it here; training would silently go wrong, so the run stops. `sdpipe doctor` shows the check."));

        log($"numerics: oneDNN computes wrong results on this CPU ({listed}); turning oneDNN off for this process and checking again");
        var second = NumericsSelfCheck.Run(probes, device, dtypes);
        if (!second.Passed)
            throw new NumericsException(
                $"numerics self-check: with oneDNN off, {second.Failures.Count} operation configurations are still wrong against float64: " +
                $"{string.Join("; ", second.Failures)}. Training would silently go wrong, so the run stops.");
        var worked = new NumericsVerdict(second.Results.Count, failures, "oneDNN off", first.Seconds + second.Seconds);
        log(worked.Line);
        return worked;
    }
}
