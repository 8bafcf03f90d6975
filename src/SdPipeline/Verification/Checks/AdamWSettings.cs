using System.Globalization;
using System.Text.RegularExpressions;

namespace SdPipeline.Verification.Checks;

/// <summary>The hyperparameters of a <c>torch.optim.AdamW(...)</c> call a sidecar describes; PyTorch's defaults where it says nothing.</summary>
internal sealed partial record AdamWSettings(double LearningRate, double Beta1, double Beta2, double Eps, double WeightDecay)
{
    /// <summary>Reads <c>torch.optim.AdamW(params, lr=1e-4, betas=(0.9,0.999), weight_decay=1e-2, eps=1e-8)</c>; anything else is a problem to report.</summary>
    public static (AdamWSettings? Settings, string? Problem) Parse(string? description)
    {
        if (description is null) return (null, "the sidecar names no optimizer");
        if (!description.Contains("AdamW(", StringComparison.Ordinal)) return (null, $"optimizer '{description}' is not torch.optim.AdamW");
        if (description.Contains("amsgrad=True", StringComparison.Ordinal)) return (null, "AdamW with amsgrad is not checked");
        double Value(string key, double fallback) =>
            Regex.Match(description, $@"\b{key}\s*=\s*({NumberPattern})") is { Success: true } m ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : fallback;
        var betas = Betas().Match(description);
        return (new AdamWSettings(
            Value("lr", 1e-3),
            betas.Success ? double.Parse(betas.Groups[1].Value, CultureInfo.InvariantCulture) : 0.9,
            betas.Success ? double.Parse(betas.Groups[2].Value, CultureInfo.InvariantCulture) : 0.999,
            Value("eps", 1e-8),
            Value("weight_decay", 1e-2)), null);
    }

    private const string NumberPattern = @"[0-9.]+(?:[eE][-+]?[0-9]+)?";

    [GeneratedRegex(@"betas\s*=\s*\(\s*(" + NumberPattern + @")\s*,\s*(" + NumberPattern + @")\s*\)")]
    private static partial Regex Betas();
}
