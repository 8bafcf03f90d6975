using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Training;

/// <summary>Where a run stands: what a checkpoint records besides tensors, so a resumed run continues the same run.</summary>
/// <param name="Step">Optimizer steps taken.</param>
/// <param name="Epoch">Epoch of the next batch.</param>
/// <param name="BatchInEpoch">Index of the next batch within <paramref name="Epoch"/>'s order.</param>
/// <param name="MetricsLines">Lines of metrics.jsonl written up to this point (a resume truncates to it).</param>
/// <param name="EmaSteps">EMA averaging steps.</param>
/// <param name="LossScaler">Loss-scaler state (fp16), or null.</param>
public sealed record TrainingProgress(
    [property: JsonProperty("step")] long Step,
    [property: JsonProperty("epoch")] int Epoch,
    [property: JsonProperty("batch_in_epoch")] int BatchInEpoch,
    [property: JsonProperty("metrics_lines")] int MetricsLines,
    [property: JsonProperty("ema_steps")] long EmaSteps,
    [property: JsonProperty("loss_scaler")] JObject? LossScaler);
