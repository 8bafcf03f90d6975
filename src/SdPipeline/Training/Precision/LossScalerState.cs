namespace SdPipeline.Training.Precision;

/// <summary>
/// What a training checkpoint stores of a <see cref="DynamicLossScaler"/> so that a resumed run continues with the
/// same scale (rather than re-learning it from 65536 through a burst of skipped steps).
/// </summary>
/// <param name="Scale">The current loss scale.</param>
/// <param name="GrowthTracker">Consecutive finite steps since the scale last changed.</param>
/// <param name="SkippedSteps">Optimizer steps skipped so far because of inf/NaN gradients.</param>
public sealed record LossScalerState(double Scale, int GrowthTracker, long SkippedSteps);
