using SdPipeline.Config;

namespace SdPipeline.Lora;

/// <summary>
/// How a LoRA is trained, from the <c>train</c> section: rank, alpha (the adapter's output is scaled by alpha / rank, as
/// PEFT's <c>scaling</c>), dropout on the adapter's input, and which layers get adapters.
/// </summary>
/// <param name="Rank">r: the width of the low-rank bottleneck.</param>
/// <param name="Alpha">lora_alpha.</param>
/// <param name="Dropout">Dropout probability on the adapter's input while training.</param>
/// <param name="Attention">Adapters on the UNet's attention projections (to_q, to_k, to_v, to_out.0).</param>
/// <param name="Resnets">Adapters on the UNet's resnet convolutions (conv1, conv2, conv_shortcut).</param>
/// <param name="TextEncoder">Adapters on the text encoder's attention projections (q_proj, k_proj, v_proj, out_proj).</param>
public sealed record LoraSettings(int Rank, double Alpha, double Dropout, bool Attention, bool Resnets, bool TextEncoder)
{
    /// <summary>The factor on the adapter's output: alpha / rank.</summary>
    public double Scale => Alpha / Rank;

    /// <summary>Reads and checks the LoRA keys of <paramref name="train"/>.</summary>
    /// <exception cref="ConfigException">A value out of range, named with its key and the fix.</exception>
    public static LoraSettings From(TrainSection train)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (train.LoraRank < 1)
            throw new ConfigException($"train.lora_rank = {train.LoraRank}: the rank must be at least 1 (4 is diffusers' default; 4–128 is usual)");
        if (train.LoraAlpha < 0 || !double.IsFinite(train.LoraAlpha))
            throw new ConfigException($"train.lora_alpha = {train.LoraAlpha}: alpha must be a positive number, or 0 for alpha = lora_rank");
        if (train.LoraDropout < 0 || train.LoraDropout >= 1)
            throw new ConfigException($"train.lora_dropout = {train.LoraDropout}: a dropout probability is in [0, 1)");
        if (train.LoraTargets.Length == 0)
            throw new ConfigException("train.lora_targets is empty: list at least one of attention, resnets (default [\"attention\"])");
        return new LoraSettings(train.LoraRank, train.LoraAlpha > 0 ? train.LoraAlpha : train.LoraRank, train.LoraDropout,
            train.LoraTargets.Contains("attention"), train.LoraTargets.Contains("resnets"), train.TrainTextEncoder);
    }
}
