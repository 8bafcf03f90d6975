namespace SdPipeline.Reporting;

/// <summary>Prompt adherence of the base and the fine-tuned model on the same prompts and seeds.</summary>
/// <param name="Base">Rates of the base model.</param>
/// <param name="FineTuned">Rates of the fine-tuned model.</param>
/// <param name="Verdicts">Every judged sample.</param>
public sealed record AdherenceResult(AdherenceRates Base, AdherenceRates FineTuned, IReadOnlyList<AdherenceVerdict> Verdicts);
