using SdPipeline.Models.Shared;
using SdPipeline.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>
/// The Stable Diffusion 1.x/2.x/XL denoising UNet: predicts the noise (or v) in latents at a timestep, conditioned on
/// text embeddings. Parameter names, and so <c>state_dict()</c> keys, equal diffusers' (<c>conv_in.weight</c>,
/// <c>down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight</c>, …).
/// </summary>
/// <remarks>Mirrors diffusers.models.unets.unet_2d_condition.UNet2DConditionModel (git 58eb52c0) on the SD 1.x/2.x path.</remarks>
public sealed class UNet2DConditionModel : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private const string WeightsName = "diffusion_pytorch_model.safetensors";
    private const string ConfigName = "config.json";

    // Field order = diffusers' registration order = state_dict order.
    private readonly nn.Module<Tensor, Tensor> conv_in;
    private readonly Timesteps time_proj;
    private readonly TimestepEmbedding time_embedding;
    // SDXL (addition_embed_type "text_time"); null otherwise.
    private readonly Timesteps? add_time_proj;
    private readonly TimestepEmbedding? add_embedding;
    private readonly ModuleList<UNetDownBlock> down_blocks;
    private readonly ModuleList<UNetUpBlock> up_blocks;
    private readonly UNetMidBlock2DCrossAttn mid_block;
    private readonly nn.Module<Tensor, Tensor> conv_norm_out;
    private readonly nn.Module<Tensor, Tensor> conv_out;

    private readonly int _numUpsamplers;

    /// <summary>The architecture.</summary>
    public UNet2DConditionConfig Config { get; }

    /// <summary>Builds the UNet with freshly initialised parameters.</summary>
    /// <param name="config">The architecture (validated here).</param>
    /// <param name="device">Where to create the parameters; <c>meta</c> builds shapes only (no memory, no initialisation cost).</param>
    /// <exception cref="DiffusersConfigException">The config is inconsistent or uses an unported option.</exception>
    public UNet2DConditionModel(UNet2DConditionConfig config, Device? device = null) : base(nameof(UNet2DConditionModel))
    {
        config.Validate();
        Config = config;
        var boc = config.BlockOutChannels;
        int blocks = boc.Count;

        // input
        conv_in = nn.Conv2d(config.InChannels, boc[0], kernel_size: config.ConvInKernel, stride: 1, padding: (config.ConvInKernel - 1) / 2, device: device);

        // time
        int timeEmbedDim = config.TimeEmbedDim;
        time_proj = new Timesteps(boc[0], config.FlipSinToCos, config.FreqShift);
        time_embedding = new TimestepEmbedding(boc[0], timeEmbedDim, device);
        if (config.HasTextTimeEmbedding)
        {
            add_time_proj = new Timesteps(config.AdditionTimeEmbedDim!.Value, config.FlipSinToCos, config.FreqShift);
            add_embedding = new TimestepEmbedding(config.ProjectionClassEmbeddingsInputDim!.Value, timeEmbedDim, device);
        }

        // down
        var downBlocks = new UNetDownBlock[blocks];
        int outputChannel = boc[0];
        for (int i = 0; i < blocks; i++)
        {
            int inputChannel = outputChannel;
            outputChannel = boc[i];
            bool isFinal = i == blocks - 1;
            downBlocks[i] = config.DownBlockTypes[i] switch
            {
                "CrossAttnDownBlock2D" => new CrossAttnDownBlock2D(inputChannel, outputChannel, timeEmbedDim, config.LayersPerBlock,
                    config.TransformerLayersOfDownBlock(i), addDownsample: !isFinal, config.NormNumGroups, config.NormEps, config.Dropout,
                    config.DownsamplePadding, config.CrossAttentionDim, config.HeadsOfDownBlock(i), config.UseLinearProjection,
                    config.UpcastAttention, device),
                "DownBlock2D" => new DownBlock2D(inputChannel, outputChannel, timeEmbedDim, config.LayersPerBlock, addDownsample: !isFinal,
                    config.NormNumGroups, config.NormEps, config.Dropout, config.DownsamplePadding, device),
                var other => throw new NotSupportedException($"down block type {other}"),
            };
        }

        // up (deepest first; heads and channels reversed)
        var upBlocks = new UNetUpBlock[blocks];
        outputChannel = boc[blocks - 1];
        for (int i = 0; i < blocks; i++)
        {
            bool isFinal = i == blocks - 1;
            int prevOutputChannel = outputChannel;
            outputChannel = boc[blocks - 1 - i];
            int inputChannel = boc[Math.Max(blocks - 2 - i, 0)];
            if (!isFinal) _numUpsamplers++;
            upBlocks[i] = config.UpBlockTypes[i] switch
            {
                "CrossAttnUpBlock2D" => new CrossAttnUpBlock2D(inputChannel, outputChannel, prevOutputChannel, timeEmbedDim, config.LayersPerBlock + 1,
                    config.TransformerLayersOfDownBlock(blocks - 1 - i), addUpsample: !isFinal, config.NormNumGroups, config.NormEps, config.Dropout,
                    config.CrossAttentionDim, config.HeadsOfDownBlock(blocks - 1 - i), config.UseLinearProjection, config.UpcastAttention, device),
                "UpBlock2D" => new UpBlock2D(inputChannel, outputChannel, prevOutputChannel, timeEmbedDim, config.LayersPerBlock + 1,
                    addUpsample: !isFinal, config.NormNumGroups, config.NormEps, config.Dropout, device),
                var other => throw new NotSupportedException($"up block type {other}"),
            };
        }
        down_blocks = nn.ModuleList(downBlocks);
        up_blocks = nn.ModuleList(upBlocks);

        // mid
        mid_block = new UNetMidBlock2DCrossAttn(boc[blocks - 1], timeEmbedDim, config.TransformerLayersOfDownBlock(blocks - 1), config.NormNumGroups,
            config.NormEps, config.Dropout, config.MidBlockScaleFactor, config.CrossAttentionDim, config.HeadsOfDownBlock(blocks - 1),
            config.UseLinearProjection, config.UpcastAttention, device);

        // out
        conv_norm_out = Norms.GroupNorm(config.NormNumGroups, boc[0], config.NormEps, device);
        conv_out = nn.Conv2d(boc[0], config.OutChannels, kernel_size: config.ConvOutKernel, stride: 1, padding: (config.ConvOutKernel - 1) / 2, device: device);

        RegisterComponents();
    }

    /// <summary>
    /// diffusers' <c>enable_gradient_checkpointing</c>: every down, mid and up block runs its resnets and transformers
    /// through <paramref name="checkpoint"/> while gradients are recorded.
    /// </summary>
    public void EnableGradientCheckpointing(GradientCheckpointingFunction checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        foreach (var block in modules().OfType<UNetBlock>()) block.GradientCheckpointingFunc = checkpoint;
    }

    /// <summary>diffusers' <c>disable_gradient_checkpointing</c>: the blocks call their resnets and transformers directly again.</summary>
    public void DisableGradientCheckpointing()
    {
        foreach (var block in modules().OfType<UNetBlock>()) block.GradientCheckpointingFunc = null;
    }

    /// <summary>diffusers' <c>is_gradient_checkpointing</c>.</summary>
    public bool IsGradientCheckpointing => modules().OfType<UNetBlock>().Any(block => block.GradientCheckpointingFunc is not null);

    /// <summary>
    /// Predicts the noise in <paramref name="sample"/> [B, C, H, W] at <paramref name="timestep"/> (int64 or float;
    /// [B], or 0-d for the whole batch) given text embeddings <paramref name="encoderHiddenStates"/> [B, 77, D].
    /// </summary>
    /// <exception cref="ArgumentException">The UNet is SDXL's, which also needs <see cref="AddedConditions"/>.</exception>
    public override Tensor forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates) => forward(sample, timestep, encoderHiddenStates, null);

    /// <summary>
    /// The forward of an SDXL UNet (<c>addition_embed_type: "text_time"</c>): as the three-input forward, plus the
    /// pooled text embedding and time ids in <paramref name="added"/>, which must be null for any other UNet.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="added"/> is missing for SDXL, given for another UNet, or misshapen.</exception>
    public Tensor forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, AddedConditions? added)
    {
        if (Config.HasTextTimeEmbedding != added is not null)
            throw new ArgumentException(added is null
                ? "this UNet (addition_embed_type \"text_time\", SDXL) needs the pooled text embedding and time ids (added conditions)"
                : "added conditions were given to a UNet without addition_embed_type \"text_time\"", nameof(added));

        // The upsamplers must be told their output size when H or W is not a multiple of 2^(number of upsamplers).
        long factor = 1L << _numUpsamplers;
        bool forwardUpsampleSize = sample.shape[^2] % factor != 0 || sample.shape[^1] % factor != 0;

        // 0. center input if necessary
        if (Config.CenterInputSample) sample = 2 * sample - 1.0;

        // 1. time
        var timesteps = timestep.dim() == 0 ? timestep.unsqueeze(0) : timestep;
        timesteps = timesteps.to(sample.device).expand(sample.shape[0]);
        var tEmb = time_proj.call(timesteps);
        if (tEmb.dtype != sample.dtype) tEmb = tEmb.to(sample.dtype);
        var emb = time_embedding.call(tEmb);
        if (add_embedding is not null)
            emb = emb + TextTimeEmbedding.Compute(add_time_proj!, add_embedding, Config.AdditionTimeEmbedDim!.Value,
                Config.ProjectionClassEmbeddingsInputDim!.Value, added!, sample.shape[0], emb.dtype, sample.device);

        // 2. pre-process
        sample = conv_in.call(sample);

        // 3. down
        var downBlockResSamples = new List<Tensor> { sample };
        foreach (var downBlock in down_blocks)
        {
            (sample, var residuals) = downBlock.Forward(sample, emb, encoderHiddenStates);
            downBlockResSamples.AddRange(residuals);
        }

        // 4. mid
        sample = mid_block.Forward(sample, emb, encoderHiddenStates);

        // 5. up
        long[]? upsampleSize = null;
        for (int i = 0; i < up_blocks.Count; i++)
        {
            var upBlock = up_blocks[i];
            int take = upBlock.ResnetCount;
            var residuals = downBlockResSamples.GetRange(downBlockResSamples.Count - take, take);
            downBlockResSamples.RemoveRange(downBlockResSamples.Count - take, take);
            if (i < up_blocks.Count - 1 && forwardUpsampleSize) upsampleSize = downBlockResSamples[^1].shape[2..];
            sample = upBlock.Forward(sample, residuals, emb, encoderHiddenStates, upsampleSize); // consumes sample and residuals
        }

        // 6. post-process
        return sample.Into(h => Norms.Apply(conv_norm_out, h, inference: this.InInference(), silu: true)).Into(conv_out.call);
    }

    /// <summary>
    /// Builds the UNet from <c>{component}/config.json</c> of a diffusers folder and loads its safetensors weights
    /// strictly (every key present, none extra, same shapes).
    /// </summary>
    /// <param name="folder">The model folder.</param>
    /// <param name="variant">Weights variant such as <c>fp16</c> (falls back to the plain file); weights are converted to float32.</param>
    /// <param name="component">The component folder.</param>
    /// <exception cref="DiffusersConfigException">The config cannot be built.</exception>
    /// <exception cref="WeightsException">The weights do not match the config.</exception>
    public static UNet2DConditionModel FromFolder(DiffusersFolder folder, string? variant = null, string component = "unet")
    {
        var config = UNet2DConditionConfig.Parse(folder.ComponentJson(component), Path.Combine(folder.Component(component), ConfigName));
        var files = folder.WeightFiles(component, variant);
        // Built on meta, then given empty storage: the strict load overwrites every parameter anyway.
        var model = new UNet2DConditionModel(config, new Device(DeviceType.META));
        try
        {
            MetaModules.ToEmpty(model, torch.CPU);
            StateDictLoader.Load(model, files);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>
    /// Writes <c>config.json</c> (every key, diffusers style) and <c>diffusion_pytorch_model.safetensors</c> into
    /// <paramref name="componentFolder"/>, which diffusers' <c>UNet2DConditionModel.from_pretrained</c> and
    /// <see cref="FromFolder"/> both load.
    /// </summary>
    public void Save(string componentFolder)
    {
        Directory.CreateDirectory(componentFolder);
        SafeTensorsWriter.Write(Path.Combine(componentFolder, WeightsName), state_dict());
        DiffusersConfigWriter.Write(Path.Combine(componentFolder, ConfigName), Config.ToJson());
    }
}
