using SdPipeline.Models.Unet;

namespace SdPipeline.Tests.Benchmarks;

/// <summary>
/// The FLOPs of a UNet forward worked out by hand from its config, block by block as diffusers builds it, without
/// running anything: an independent check of what <see cref="SdPipeline.Benchmarks.FlopCounter"/> reads off the hooks.
/// Square latents whose side survives every downsampling evenly; no linear projections.
/// </summary>
internal sealed class UNetFlopArithmetic
{
    private readonly UNet2DConditionConfig _config;
    private readonly long _batch;
    private readonly long _textTokens;

    private UNetFlopArithmetic(UNet2DConditionConfig config, long batch, long textTokens)
    {
        _config = config;
        _batch = batch;
        _textTokens = textTokens;
    }

    /// <summary>All convolution, linear and attention FLOPs of one forward.</summary>
    public double Forward { get; private set; }

    /// <summary>The forward FLOPs of the layers whose input needs no gradient (conv_in, time_embedding.linear_1, to_k/to_v over the text).</summary>
    public double WithoutGradInput { get; private set; }

    public static UNetFlopArithmetic Of(UNet2DConditionConfig config, long size, long batch = 1, long textTokens = 77)
    {
        var count = new UNetFlopArithmetic(config, batch, textTokens);
        count.Walk(size);
        return count;
    }

    private void Walk(long size)
    {
        var c = _config;
        var channels = c.BlockOutChannels;
        int blocks = channels.Count;
        long time = c.TimeEmbedDim;

        double convIn = Conv(c.InChannels, channels[0], c.ConvInKernel, size);
        double timeLinear1 = Linear(channels[0], time, 1);
        WithoutGradInput += convIn + timeLinear1;
        Linear(time, time, 1);

        long hw = size;
        var skips = new Stack<long>();
        skips.Push(channels[0]);
        long input = channels[0];
        for (int i = 0; i < blocks; i++)
        {
            for (int j = 0; j < c.LayersPerBlock; j++)
            {
                Resnet(input, channels[i], hw);
                input = channels[i];
                if (c.DownBlockTypes[i] == "CrossAttnDownBlock2D") Transformer(channels[i], c.HeadsOfDownBlock(i), c.TransformerLayersOfDownBlock(i), hw);
                skips.Push(channels[i]);
            }
            if (i < blocks - 1)
            {
                hw = (hw + 2 * c.DownsamplePadding - 3) / 2 + 1;
                Conv(channels[i], channels[i], 3, hw);
                skips.Push(channels[i]);
            }
        }

        Resnet(channels[^1], channels[^1], hw);
        Transformer(channels[^1], c.HeadsOfDownBlock(blocks - 1), c.TransformerLayersOfDownBlock(blocks - 1), hw);
        Resnet(channels[^1], channels[^1], hw);

        long previous = channels[^1];
        for (int i = 0; i < blocks; i++)
        {
            long output = channels[blocks - 1 - i];
            for (int j = 0; j < c.LayersPerBlock + 1; j++)
            {
                Resnet(previous + skips.Pop(), output, hw);
                previous = output;
                if (c.UpBlockTypes[i] == "CrossAttnUpBlock2D") Transformer(output, c.HeadsOfDownBlock(blocks - 1 - i), c.TransformerLayersOfDownBlock(blocks - 1 - i), hw);
            }
            if (i < blocks - 1)
            {
                hw *= 2;
                Conv(output, output, 3, hw);
            }
        }
        Conv(channels[0], c.OutChannels, c.ConvOutKernel, hw);
    }

    private void Resnet(long inChannels, long outChannels, long hw)
    {
        Conv(inChannels, outChannels, 3, hw);
        Linear(_config.TimeEmbedDim, outChannels, 1);
        Conv(outChannels, outChannels, 3, hw);
        if (inChannels != outChannels) Conv(inChannels, outChannels, 1, hw);
    }

    private void Transformer(long channels, long heads, int layers, long hw)
    {
        long tokens = hw * hw, text = _config.CrossAttentionDim;
        Conv(channels, channels, 1, hw);
        for (int layer = 0; layer < layers; layer++)
        {
            // attn1: self-attention over the pixels
            for (int p = 0; p < 4; p++) Linear(channels, channels, tokens);
            Attention(heads, tokens, tokens, channels / heads);
            // attn2: cross-attention over the text; its keys and values come from the text embeddings
            Linear(channels, channels, tokens);
            WithoutGradInput += Linear(text, channels, _textTokens) + Linear(text, channels, _textTokens);
            Attention(heads, tokens, _textTokens, channels / heads);
            Linear(channels, channels, tokens);
            // GEGLU feed-forward: to 2×4C, back from 4C
            Linear(channels, 8 * channels, tokens);
            Linear(4 * channels, channels, tokens);
        }
        Conv(channels, channels, 1, hw);
    }

    private double Conv(long inChannels, long outChannels, long kernel, long outputSide) =>
        Add(2.0 * _batch * outChannels * inChannels * kernel * kernel * outputSide * outputSide);

    private double Linear(long inFeatures, long outFeatures, long tokens) => Add(2.0 * _batch * tokens * inFeatures * outFeatures);

    private double Attention(long heads, long queryLength, long keyLength, long headDim) =>
        Add(2 * 2.0 * _batch * heads * queryLength * keyLength * headDim);

    private double Add(double flops)
    {
        Forward += flops;
        return flops;
    }
}
