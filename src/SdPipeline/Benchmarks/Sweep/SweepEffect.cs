namespace SdPipeline.Benchmarks.Sweep;

/// <summary>
/// What one setting does on its own: the cell that differs from the baseline in that setting only, against the
/// baseline — the study's conclusions, regenerated from measurements.
/// </summary>
/// <param name="Setting">The setting, as <c>mixed_precision=bf16</c>, <c>gradient_checkpointing=on</c> or <c>resolution=half</c>.</param>
/// <param name="Cell">The cell measured with it.</param>
/// <param name="TimeChange">Step time against the baseline (fraction); null when either has no measurement.</param>
/// <param name="MemoryChange">Peak memory against the baseline (fraction); null when either has no measurement.</param>
/// <param name="Study">What the study found for this setting on a T4 GPU, for comparison.</param>
public sealed record SweepEffect(string Setting, string Cell, double? TimeChange, double? MemoryChange, string Study);
