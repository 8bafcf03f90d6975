namespace SdPipeline.Reporting;

/// <summary>A <c>"kind":"train"</c> line of <c>metrics.jsonl</c>: one optimizer step.</summary>
/// <param name="Step">Optimizer step (0-based or 1-based, as the trainer counts).</param>
/// <param name="Epoch">Epoch of the step.</param>
/// <param name="Loss">Training loss of the step; null or non-finite when the step overflowed.</param>
/// <param name="LearningRate">Learning rate used (<c>lr</c>).</param>
/// <param name="GradNorm">Gradient norm before clipping.</param>
/// <param name="LossScale">fp16 loss scale, null without a scaler.</param>
/// <param name="Skipped">True when the fp16 scaler skipped the step (inf/NaN gradients).</param>
/// <param name="StepTimeSeconds">Wall time of the step.</param>
/// <param name="ImagesPerSecond">Training throughput of the step.</param>
/// <param name="PeakMemoryBytes">Peak memory so far (device memory on CUDA, resident set on CPU).</param>
public sealed record TrainMetric(
    long Step,
    int Epoch,
    double? Loss,
    double? LearningRate,
    double? GradNorm,
    double? LossScale,
    bool Skipped,
    double? StepTimeSeconds,
    double? ImagesPerSecond,
    long? PeakMemoryBytes);
