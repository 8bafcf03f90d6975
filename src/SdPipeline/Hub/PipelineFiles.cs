namespace SdPipeline.Hub;

/// <summary>
/// Which files of a Stable Diffusion repository a text-to-image pipeline needs: the component configs,
/// the tokenizer, and one set of safetensors weights per component (the requested precision variant
/// when the repository has it). Everything else — pickle weights, single-file checkpoints at the top
/// level, safety checker, feature extractor, images — is left on the Hub. An SDXL repository (one with
/// <c>text_encoder_2/config.json</c>) also gets its second text encoder and tokenizer.
/// </summary>
public static class PipelineFiles
{
    /// <summary>The components whose weights are fetched.</summary>
    public static IReadOnlyList<string> WeightComponents { get; } = ["unet", "vae", "text_encoder"];

    private static readonly HashSet<string> Always = new(StringComparer.Ordinal)
    {
        "model_index.json",
        "unet/config.json", "vae/config.json", "text_encoder/config.json",
        "scheduler/scheduler_config.json",
        "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json",
        // A textual-inversion placeholder saved with the tokenizer: its ids come from here.
        "tokenizer/added_tokens.json",
    };

    // SDXL's second text encoder and tokenizer (tokenizer_2 pads with "!").
    private static readonly HashSet<string> SdxlAlways = new(StringComparer.Ordinal)
    {
        "text_encoder_2/config.json",
        "tokenizer_2/vocab.json", "tokenizer_2/merges.txt", "tokenizer_2/tokenizer_config.json", "tokenizer_2/special_tokens_map.json",
        "tokenizer_2/added_tokens.json",
    };

    /// <summary>The subset of <paramref name="files"/> to download.</summary>
    /// <param name="files">The repository's (or a local folder's) files.</param>
    /// <param name="variant">The precision variant to prefer, or null.</param>
    /// <param name="location">Where the files are, for errors: "on the Hub", or "in" a local folder.</param>
    /// <exception cref="SdPipeline.Weights.WeightsException">A component without safetensors weights.</exception>
    public static IReadOnlyList<HubFile> Select(IReadOnlyList<HubFile> files, string? variant, string location = "on the Hub")
    {
        bool sdxl = files.Any(f => f.Path == "text_encoder_2/config.json");
        var chosen = files.Where(f => Always.Contains(f.Path) || (sdxl && SdxlAlways.Contains(f.Path))).ToList();
        foreach (string component in sdxl ? [.. WeightComponents, "text_encoder_2"] : WeightComponents)
        {
            var candidates = files.Where(f => f.Path.StartsWith(component + "/", StringComparison.Ordinal) && f.Path.Count(c => c == '/') == 1).ToList();
            var weights = Weights(candidates, variant) ?? Weights(candidates, null);
            if (weights is null)
            {
                if (candidates.Any(f => f.Path.EndsWith(".bin", StringComparison.Ordinal)))
                    throw new SdPipeline.Weights.WeightsException($"{component}/ {location} has only pickle (.bin) weights; " + SdPipeline.Weights.PickleRefusal.Message(component + "/diffusion_pytorch_model.bin"));
                // SDXL's refiner has text_encoder_2/ alone: a text-to-image pipeline of the base's kind cannot be built from it.
                if (candidates.Count == 0)
                    throw new SdPipeline.Weights.WeightsException($"no {component}/ {location}, which a text-to-image pipeline needs (unet/, vae/, text_encoder/" +
                        (sdxl ? ", and text_encoder_2/ for SDXL; an SDXL refiner, which has no text_encoder/, is not supported)" : ")"));
                throw new SdPipeline.Weights.WeightsException($"{component}/ {location} has no safetensors weights");
            }
            chosen.AddRange(weights);
        }
        return chosen;
    }

    private static List<HubFile>? Weights(List<HubFile> candidates, string? variant)
    {
        foreach (string stem in new[] { "diffusion_pytorch_model", "model" })
        {
            string name = variant is null ? stem : $"{stem}.{variant}";
            var single = candidates.FirstOrDefault(f => Path.GetFileName(f.Path) == $"{name}.safetensors");
            if (single is not null) return [single];
            var index = candidates.FirstOrDefault(f => Path.GetFileName(f.Path) == $"{name}.safetensors.index.json");
            if (index is not null)
                return [index, .. candidates.Where(f => Path.GetFileName(f.Path).StartsWith(name + "-", StringComparison.Ordinal) && f.Path.EndsWith(".safetensors", StringComparison.Ordinal))];
        }
        return null;
    }
}
