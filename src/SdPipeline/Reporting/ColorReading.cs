namespace SdPipeline.Reporting;

/// <summary>What the pixels of an image show, in palette colours.</summary>
/// <param name="Background">The most common palette colour, or null when no pixel is near any palette colour.</param>
/// <param name="BackgroundShare">Share of all pixels that are the background colour.</param>
/// <param name="ShapeColor">The most common other palette colour, or null when none covers <see cref="PromptAdherence.MinimumShapeShare"/> of the image.</param>
/// <param name="ShapeShare">Share of all pixels that are the shape colour (0 when there is none).</param>
public sealed record ColorReading(string? Background, double BackgroundShare, string? ShapeColor, double ShapeShare);
