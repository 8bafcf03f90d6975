using SdPipeline.Data;

namespace SdPipeline.Reporting;

/// <summary>Whether one sample shows the colours its prompt asked for.</summary>
/// <param name="Model">Base or fine-tuned.</param>
/// <param name="Prompt">The prompt.</param>
/// <param name="Seed">The sample's seed.</param>
/// <param name="Expected">What the prompt asked for.</param>
/// <param name="Reading">What the pixels show.</param>
public sealed record AdherenceVerdict(ModelVariant Model, string Prompt, long Seed, ShapesCaption Expected, ColorReading Reading)
{
    /// <summary>The shape has the asked colour.</summary>
    public bool ColorMatches => Reading.ShapeColor == Expected.Color;

    /// <summary>The background has the asked colour.</summary>
    public bool BackgroundMatches => Reading.Background == Expected.Background;
}
