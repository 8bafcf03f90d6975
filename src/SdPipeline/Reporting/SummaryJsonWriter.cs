using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Reporting;

/// <summary>
/// Writes summary.json: the report's key figures for machines (CI checks, comparisons across runs).
/// Field names are snake_case; a figure that was not measured is <c>null</c>, never left out, so readers
/// can rely on the shape. <see cref="SchemaVersion"/> changes when a field changes meaning.
/// </summary>
public static class SummaryJsonWriter
{
    /// <summary>Version of the summary.json layout.</summary>
    public const int SchemaVersion = 1;

    /// <summary>Builds the summary object of <paramref name="facts"/>.</summary>
    public static JObject Build(ReportFacts facts)
    {
        ArgumentNullException.ThrowIfNull(facts);
        var input = facts.Input;
        var o = input.Overview;
        var eval = facts.LastEval;
        var stepTime = facts.StepTimes.FirstOrDefault(r => r.Figure.StartsWith("step time", StringComparison.Ordinal));
        var throughput = facts.StepTimes.FirstOrDefault(r => r.Figure.StartsWith("throughput", StringComparison.Ordinal));
        return new JObject
        {
            ["schema_version"] = SchemaVersion,
            ["run"] = new JObject
            {
                ["model"] = o.ModelSource,
                ["dataset"] = o.DatasetName,
                ["device"] = o.Device,
                ["tool_version"] = o.ToolVersion,
                ["torchsharp_version"] = o.TorchSharpVersion,
                ["libtorch_version"] = o.LibTorchVersion,
                ["numerics"] = o.Numerics,
                ["git_commit"] = o.GitCommit is null ? JValue.CreateNull() : new JValue(o.GitCommit),
                ["timestamp"] = o.Timestamp.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture),
            },
            ["stages"] = new JArray(input.Stages.Select(s => new JObject
            {
                ["name"] = s.Name,
                ["fingerprint"] = s.Fingerprint,
                ["cache_hit"] = s.CacheHit,
                ["duration_seconds"] = s.DurationSeconds,
            })),
            ["config_differences"] = new JArray(input.ConfigDifferences.Select(d => new JObject
            {
                ["path"] = d.Path,
                ["default"] = ParseOrText(d.DefaultJson),
                ["value"] = ParseOrText(d.ValueJson),
            })),
            ["training"] = new JObject
            {
                ["steps"] = facts.Steps,
                ["final_loss"] = Number(facts.FinalLoss),
                ["final_loss_smoothed"] = Number(facts.FinalLossSmoothed),
                ["heldout_step"] = eval?.Step,
                ["heldout_loss"] = Number(eval?.HeldoutLoss),
                ["heldout_loss_shuffled"] = Number(eval?.HeldoutLossShuffled),
                ["caption_shuffle_gap"] = Number(eval?.CaptionShuffleGap),
                ["skipped_steps"] = facts.SkippedSteps,
                ["step_time_seconds_median"] = Number(stepTime?.Median),
                ["images_per_second_median"] = Number(throughput?.Median),
                ["peak_memory_bytes"] = facts.PeakMemoryBytes,
                ["method"] = input.Method?.Method,
                ["trainable_parameters"] = input.Method?.TrainableParameters,
                ["lora"] = input.Method is { IsLora: true } m ? new JObject
                {
                    ["rank"] = m.Rank,
                    ["alpha"] = m.Alpha,
                    ["targets"] = new JArray(m.Targets),
                    ["base_parameters"] = m.BaseParameters,
                    ["files"] = new JObject(m.Files.Select(f => new JProperty(f.Key, f.Value))),
                    ["sample_scale"] = m.SampleScale,
                    ["benchmark_time_change"] = m.BenchmarkComparison?.TimeChange,
                    ["benchmark_memory_change"] = m.BenchmarkComparison?.MemoryChange,
                } : null,
            },
            ["samples"] = new JObject
            {
                ["prompts"] = input.Samples.Count,
                ["base_images"] = input.Samples.Sum(s => s.Base.Count),
                ["fine_tuned_images"] = input.Samples.Sum(s => s.FineTuned.Count),
                ["flagged_images"] = facts.FlaggedImages.Select(f => (f.Model, f.Prompt, f.Seed)).Distinct().Count(),
                ["flagged"] = new JArray(facts.FlaggedImages.Select(f => new JObject
                {
                    ["model"] = ReportFacts.Label(f.Model),
                    ["prompt"] = f.Prompt,
                    ["seed"] = f.Seed,
                    ["flag"] = f.Flag,
                })),
            },
            ["adherence"] = input.Adherence is { } a
                ? new JObject { ["base"] = Rates(a.Base), ["fine_tuned"] = Rates(a.FineTuned) }
                : JValue.CreateNull(),
            ["benchmark"] = input.Benchmark is { } b
                ? new JObject
                {
                    ["columns"] = new JArray(b.Columns),
                    ["rows"] = new JArray(b.Rows.Select(r => new JArray(r))),
                    ["notes"] = new JArray(b.Notes),
                }
                : JValue.CreateNull(),
            ["warnings"] = new JArray(facts.Warnings),
        };
    }

    /// <summary>The summary of <paramref name="facts"/> as indented JSON.</summary>
    public static string Render(ReportFacts facts) => Build(facts).ToString(Formatting.Indented) + "\n";

    private static JObject Rates(AdherenceRates rates) => new()
    {
        ["images"] = rates.Images,
        ["color_matches"] = rates.ColorMatches,
        ["background_matches"] = rates.BackgroundMatches,
        ["both_match"] = rates.BothMatch,
        ["color_rate"] = rates.ColorRate,
        ["background_rate"] = rates.BackgroundRate,
        ["both_rate"] = rates.BothRate,
    };

    /// <summary>JSON has no NaN or infinity: a non-finite figure is written as null.</summary>
    private static JToken Number(double? value) => value is { } v && double.IsFinite(v) ? new JValue(v) : JValue.CreateNull();

    private static JToken ParseOrText(string json)
    {
        try
        {
            return JToken.Parse(json);
        }
        catch (JsonReaderException)
        {
            return new JValue(json);
        }
    }
}
