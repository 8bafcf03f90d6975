using System.Text.RegularExpressions;
using SdPipeline.Data;

namespace SdPipeline.Reporting;

/// <summary>What a <c>shapes</c> caption asks for: "a red circle on a blue background".</summary>
/// <param name="Color">The shape's palette colour name.</param>
/// <param name="Shape">The shape (circle, square, triangle).</param>
/// <param name="Background">The background's palette colour name.</param>
public sealed partial record ShapesCaption(string Color, string Shape, string Background)
{
    /// <summary>Parses a caption of <see cref="ShapesGenerator"/>'s form; null when it is not one (any other prompt).</summary>
    public static ShapesCaption? TryParse(string caption)
    {
        var match = Pattern().Match(caption.Trim());
        if (!match.Success) return null;
        string color = match.Groups["color"].Value.ToLowerInvariant();
        string shape = match.Groups["shape"].Value.ToLowerInvariant();
        string background = match.Groups["background"].Value.ToLowerInvariant();
        bool known = IsPaletteColor(color) && IsPaletteColor(background) && ShapesGenerator.Shapes.Contains(shape);
        return known ? new ShapesCaption(color, shape, background) : null;
    }

    private static bool IsPaletteColor(string name) => ShapesGenerator.Colors.Any(c => c.Name == name);

    [GeneratedRegex(@"^an? (?<color>[a-z]+) (?<shape>[a-z]+) on an? (?<background>[a-z]+) background\.?$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
