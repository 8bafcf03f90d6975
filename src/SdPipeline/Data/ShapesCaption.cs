using System.Text.RegularExpressions;

namespace SdPipeline.Data;

/// <summary>
/// A <c>shapes</c> caption, "a red circle on a blue background": the one place its grammar lives, written by
/// <see cref="ShapesGenerator"/> and read back by the report's prompt-adherence check.
/// </summary>
/// <param name="Color">The shape's palette colour name.</param>
/// <param name="Shape">The shape (circle, square, triangle).</param>
/// <param name="Background">The background's palette colour name.</param>
public sealed partial record ShapesCaption(string Color, string Shape, string Background)
{
    /// <summary>The caption as the dataset writes it.</summary>
    public string Text => $"{Article(Color)} {Color} {Shape} on {Article(Background)} {Background} background";

    /// <summary>Parses a caption of this form; null when it is not one (any other prompt).</summary>
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

    private static string Article(string word) => "aeiou".Contains(word[0]) ? "an" : "a";

    private static bool IsPaletteColor(string name) => ShapesGenerator.Colors.Any(c => c.Name == name);

    [GeneratedRegex(@"^an? (?<color>[a-z]+) (?<shape>[a-z]+) on an? (?<background>[a-z]+) background\.?$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
