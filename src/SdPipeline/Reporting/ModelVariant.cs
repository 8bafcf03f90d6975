namespace SdPipeline.Reporting;

/// <summary>Which weights produced a sample.</summary>
public enum ModelVariant
{
    /// <summary>The base model, before fine-tuning.</summary>
    Base,

    /// <summary>The fine-tuned model.</summary>
    FineTuned,
}
