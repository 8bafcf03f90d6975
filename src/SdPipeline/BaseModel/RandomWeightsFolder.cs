using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Tokenization;
using TorchSharp;

namespace SdPipeline.BaseModel;

/// <summary>
/// A diffusers folder with a real architecture and random weights, made from the components' config files: the
/// way to check that a training setup fits in memory and runs end to end before downloading 4 GB of weights
/// (for example from a model's configs alone, as in <c>../shared/fixtures/sd15-keys</c>). SDXL configs (with
/// <c>text_encoder_2/config.json</c>) also get the second text encoder and tokenizer.
/// </summary>
public static class RandomWeightsFolder
{
    private static readonly string[] s_copiedFiles =
    [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/special_tokens_map.json",
    ];

    // SDXL's second tokenizer and text encoder; the tokenizer shares the CLIP vocabulary but pads with its own token.
    private static readonly string[] s_sdxlCopiedFiles =
    [
        "tokenizer_2/tokenizer_config.json",
        "tokenizer_2/special_tokens_map.json",
    ];

    /// <summary>
    /// Writes <paramref name="output"/> from the configs in <paramref name="configs"/> (<c>unet/config.json</c>,
    /// <c>vae/config.json</c>, <c>text_encoder/config.json</c>, <c>scheduler/scheduler_config.json</c>,
    /// <c>model_index.json</c>) and the CLIP vocabulary in <paramref name="vocabulary"/> (<c>vocab.json</c>,
    /// <c>merges.txt</c>), the weights drawn from each module's own initialisation with <paramref name="seed"/>.
    /// The folder is built beside <paramref name="output"/> and renamed into place, so it is whole or absent.
    /// </summary>
    /// <exception cref="FileNotFoundException">A config or vocabulary file is missing; the message names it.</exception>
    /// <exception cref="IOException"><paramref name="output"/> already exists.</exception>
    public static void Write(string configs, string vocabulary, string output, int seed)
    {
        output = Path.GetFullPath(output);
        if (Directory.Exists(output) || File.Exists(output))
            throw new IOException($"{output} already exists: choose a new folder (nothing was written).");
        bool sdxl = File.Exists(Path.Combine(configs, "text_encoder_2", "config.json"));
        var copied = sdxl ? [.. s_copiedFiles, .. s_sdxlCopiedFiles] : s_copiedFiles;
        foreach (string file in copied.Concat(["unet/config.json", "vae/config.json", "text_encoder/config.json"]))
            Require(Path.Combine(configs, file), $"the configs folder must hold {file} (a diffusers model's configs, without weights)");
        string vocab = Require(Path.Combine(vocabulary, "vocab.json"), "the CLIP vocabulary folder must hold vocab.json and merges.txt");
        string merges = Require(Path.Combine(vocabulary, "merges.txt"), "the CLIP vocabulary folder must hold vocab.json and merges.txt");

        string partial = output + ".partial";
        if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
        Directory.CreateDirectory(partial);
        foreach (string file in copied)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(partial, file))!);
            CopyWritable(Path.Combine(configs, file), Path.Combine(partial, file));
        }
        CopyWritable(vocab, Path.Combine(partial, "tokenizer", "vocab.json"));
        CopyWritable(merges, Path.Combine(partial, "tokenizer", "merges.txt"));
        var tokenizer = ClipTokenizer.FromFiles(vocab, merges);
        if (sdxl)
        {
            CopyWritable(vocab, Path.Combine(partial, "tokenizer_2", "vocab.json"));
            CopyWritable(merges, Path.Combine(partial, "tokenizer_2", "merges.txt"));
        }

        torch.manual_seed(seed);
        // One component at a time: SD 1.5's UNet alone is 3.4 GB in float32.
        using (var textEncoder = new ClipTextModel(ClipTextConfig.Load(Path.Combine(configs, "text_encoder", "config.json"))))
            textEncoder.Save(Path.Combine(partial, "text_encoder"), tokenizer.StartOfTextId, tokenizer.EndOfTextId, tokenizer.PadId);
        if (sdxl)
        {
            var tokenizer2 = ClipTokenizer.FromFolder(Path.Combine(partial, "tokenizer_2"));
            using var textEncoder2 = ClipTextModelWithProjection.FromConfig(Path.Combine(configs, "text_encoder_2", "config.json"));
            textEncoder2.Save(Path.Combine(partial, "text_encoder_2"), tokenizer2.StartOfTextId, tokenizer2.PadId);
        }
        using (var vae = new AutoencoderKL(AutoencoderKLConfig.Load(Path.Combine(configs, "vae", "config.json"))))
            vae.Save(Path.Combine(partial, "vae"));
        using (var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(configs, "unet", "config.json"))))
            unet.Save(Path.Combine(partial, "unet"));
        Directory.Move(partial, output);
    }

    // The sources may be read-only (a fixtures folder); the made folder is the user's to edit.
    private static void CopyWritable(string source, string target) => File.WriteAllBytes(target, File.ReadAllBytes(source));

    private static string Require(string path, string hint) =>
        File.Exists(path) ? path : throw new FileNotFoundException($"{path} not found: {hint}.", path);
}
