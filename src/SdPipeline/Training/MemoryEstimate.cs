using Newtonsoft.Json.Linq;
using SdPipeline.Models.Unet;

namespace SdPipeline.Training;

/// <summary>
/// The pre-flight memory estimate of a training run, in bytes, by part. Weights, gradients, AdamW state
/// and EMA follow from the parameter count; activations from the UNet's layout at this batch and latent size
/// (an estimate of what autograd keeps for the backward pass — with checkpointing, only each block's
/// inputs plus one block's internals). Compared with the measured peak by the benchmark.
/// </summary>
/// <param name="Weights">Trained weights (float32 masters); for LoRA also the frozen UNet they adapt.</param>
/// <param name="Gradients">Their gradients (float32).</param>
/// <param name="Optimizer">AdamW's two moments.</param>
/// <param name="Ema">The EMA copy (0 when off or kept on the CPU while training on a GPU).</param>
/// <param name="HalfWeights">Half-precision weight copies made by autocast.</param>
/// <param name="FrozenModels">Frozen modules loaded alongside (the text encoder when embeddings are not cached).</param>
/// <param name="Activations">Activations kept for the backward pass.</param>
/// <param name="Runtime">A fixed allowance for the runtime, libtorch and the data path.</param>
public sealed record MemoryEstimate(long Weights, long Gradients, long Optimizer, long Ema, long HalfWeights, long FrozenModels, long Activations, long Runtime)
{
    /// <summary>The sum.</summary>
    public long Total => Weights + Gradients + Optimizer + Ema + HalfWeights + FrozenModels + Activations + Runtime;

    /// <summary>
    /// Estimates a run of a UNet with <paramref name="config"/>. For a LoRA run (<paramref name="loraParameters"/> = the
    /// adapters' parameter count) only the adapters have gradients, AdamW moments and an EMA copy; the frozen UNet is
    /// weights only, its linear and convolution weights stored in half precision under mixed precision. With
    /// <paramref name="fusedBackwardPass"/> a full fine-tune holds no gradients (a LoRA run's adapters still collect theirs).
    /// </summary>
    public static MemoryEstimate For(UNet2DConditionConfig config, long unetParameters, long textEncoderParameters, bool trainTextEncoder,
        int batchSize, int latentHeight, int latentWidth, string mixedPrecision, bool checkpointing, bool ema, bool emaOnCpu, bool onGpu,
        long? loraParameters = null, bool fusedBackwardPass = false)
    {
        int activationBytes = mixedPrecision == "no" ? 4 : 2;
        var activations = (long)(ActivationElements(config, batchSize, latentHeight, latentWidth, checkpointing) * activationBytes);
        if (loraParameters is long adapters)
            return new MemoryEstimate(
                Weights: adapters * 4 + unetParameters * (mixedPrecision == "no" ? 4 : 2) + (trainTextEncoder ? textEncoderParameters * 4 : 0),
                Gradients: adapters * 4,
                Optimizer: adapters * 8,
                Ema: ema && !(emaOnCpu && onGpu) ? adapters * 4 : 0,
                HalfWeights: mixedPrecision == "no" ? 0 : adapters * 2,
                FrozenModels: trainTextEncoder ? 0 : textEncoderParameters * 4,
                Activations: activations,
                Runtime: 600L << 20);
        long trained = unetParameters + (trainTextEncoder ? textEncoderParameters : 0);
        return new MemoryEstimate(
            Weights: trained * 4,
            // Stepped in backward, a gradient lives only until its parameter is updated (the largest is SD 1.5's 59 MB).
            Gradients: fusedBackwardPass ? 0 : trained * 4,
            Optimizer: trained * 8,
            Ema: ema && !(emaOnCpu && onGpu) ? unetParameters * 4 : 0,
            HalfWeights: mixedPrecision == "no" ? 0 : trained * 2,
            FrozenModels: trainTextEncoder ? 0 : textEncoderParameters * 4,
            Activations: activations,
            Runtime: 600L << 20);
    }

    /// <summary>
    /// Elements autograd keeps for one forward. Per resnet ≈ 7·C·S (input, two norms, two activations, two convs);
    /// per transformer ≈ 24·C·S (norms, projections, q/k/v, the GEGLU feed-forward at 4C and 8C) plus the
    /// attention probabilities heads·S² of self-attention (the math kernel keeps them) and heads·S·77 of
    /// cross-attention, times the transformer layers of the block (SDXL's <c>transformer_layers_per_block</c> [1, 2, 10]; the mid
    /// block takes the last entry). With checkpointing each block keeps its input (C·S) and one block is live at a time.
    /// </summary>
    public static double ActivationElements(UNet2DConditionConfig config, int batch, int height, int width, bool checkpointing)
    {
        var channels = config.BlockOutChannels;
        double kept = 0, largestBlock = 0;
        void Block(double internals, double input)
        {
            kept += checkpointing ? input : internals;
            largestBlock = Math.Max(largestBlock, internals);
        }

        for (int level = 0; level < channels.Count; level++)
        {
            double s = (double)(height >> level) * (width >> level);
            double c = channels[level];
            bool attention = config.DownBlockTypes[level].StartsWith("CrossAttn", StringComparison.Ordinal);
            int heads = config.HeadsOfDownBlock(level);
            int layers = config.TransformerLayersOfDownBlock(level);
            // down path: layers_per_block resnets (+ transformers); up path: one more of each
            int resnets = 2 * config.LayersPerBlock + 1;
            for (int i = 0; i < resnets; i++)
            {
                Block(7 * c * s, c * s);
                if (attention) Block(layers * (24 * c * s + heads * s * s + heads * s * 77), c * s);
            }
        }
        // mid block: two resnets and a transformer at the lowest resolution
        int last = channels.Count - 1;
        double sMid = (double)(height >> last) * (width >> last), cMid = channels[last];
        Block(7 * cMid * sMid, cMid * sMid);
        Block(7 * cMid * sMid, cMid * sMid);
        Block(config.TransformerLayersOfDownBlock(last) * (24 * cMid * sMid + config.HeadsOfDownBlock(last) * sMid * (sMid + 77)), cMid * sMid);
        if (checkpointing) kept += largestBlock;
        return kept * batch;
    }

    /// <summary>The estimate as JSON (GiB, rounded), for the log and the manifest.</summary>
    public JObject ToJson() => new()
    {
        ["weights_gib"] = Gib(Weights),
        ["gradients_gib"] = Gib(Gradients),
        ["optimizer_gib"] = Gib(Optimizer),
        ["ema_gib"] = Gib(Ema),
        ["half_weights_gib"] = Gib(HalfWeights),
        ["frozen_models_gib"] = Gib(FrozenModels),
        ["activations_gib"] = Gib(Activations),
        ["runtime_gib"] = Gib(Runtime),
        ["total_gib"] = Gib(Total),
    };

    /// <summary>Bytes as GiB, two decimals.</summary>
    public static double Gib(long bytes) => Math.Round(bytes / (double)(1L << 30), 2);

    /// <summary>One line for the log.</summary>
    public override string ToString() =>
        $"{Gib(Total):0.00} GiB (weights {Gib(Weights):0.00}, gradients {Gib(Gradients):0.00}, AdamW {Gib(Optimizer):0.00}, EMA {Gib(Ema):0.00}, " +
        $"half copies {Gib(HalfWeights):0.00}, frozen models {Gib(FrozenModels):0.00}, activations {Gib(Activations):0.00}, runtime {Gib(Runtime):0.00})";
}
