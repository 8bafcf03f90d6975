using SdPipeline.Models.Shared;
using SdPipeline.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Vae;

/// <summary>
/// The Stable Diffusion VAE: <see cref="Encode"/> maps images in [-1, 1] to a Gaussian over latents, <see cref="Decode"/>
/// maps latents back to images. <see cref="AutoencoderKLConfig.ScalingFactor"/> is not applied inside: training
/// multiplies encoded latents by it, sampling divides by it before decoding. Parameter names equal diffusers'.
/// </summary>
/// <remarks>Mirrors diffusers.models.autoencoders.autoencoder_kl.AutoencoderKL (git 58eb52c0) without tiling or slicing.</remarks>
public sealed class AutoencoderKL : nn.Module<Tensor, Tensor>
{
    private const string WeightsName = "diffusion_pytorch_model.safetensors";
    private const string ConfigName = "config.json";

    private readonly Encoder encoder;
    private readonly Decoder decoder;
    private readonly nn.Module<Tensor, Tensor>? quant_conv;
    private readonly nn.Module<Tensor, Tensor>? post_quant_conv;

    /// <summary>The architecture.</summary>
    public AutoencoderKLConfig Config { get; }

    /// <summary>Builds the VAE with freshly initialised parameters.</summary>
    /// <param name="config">The architecture (validated here).</param>
    /// <param name="device">Where to create the parameters; <c>meta</c> builds shapes only.</param>
    /// <exception cref="DiffusersConfigException">The config is inconsistent or uses an unported option.</exception>
    public AutoencoderKL(AutoencoderKLConfig config, Device? device = null) : base(nameof(AutoencoderKL))
    {
        config.Validate();
        Config = config;
        encoder = new Encoder(config, device);
        decoder = new Decoder(config, device);
        long latent = config.LatentChannels;
        if (config.UseQuantConv) quant_conv = nn.Conv2d(2 * latent, 2 * latent, kernel_size: 1, stride: 1, padding: 0L, device: device);
        if (config.UsePostQuantConv) post_quant_conv = nn.Conv2d(latent, latent, kernel_size: 1, stride: 1, padding: 0L, device: device);
        RegisterComponents();
    }

    /// <summary>The posterior over latents of <paramref name="image"/> [B, 3, H, W] in [-1, 1].</summary>
    public DiagonalGaussianDistribution Encode(Tensor image)
    {
        PrepareForInference(image);
        var moments = encoder.call(image);
        if (quant_conv is not null) moments = moments.Into(quant_conv.call);
        return new DiagonalGaussianDistribution(moments.Into(Plain));
    }

    /// <summary>The image [B, 3, 8h, 8w] (≈ [-1, 1]) decoded from unscaled <paramref name="latents"/> [B, 4, h, w].</summary>
    public Tensor Decode(Tensor latents)
    {
        PrepareForInference(latents);
        var image = post_quant_conv is null ? decoder.call(latents) : post_quant_conv.call(latents).Into(decoder.call);
        return image.Into(Plain);
    }

    // Outputs keep the plain layout whatever the weights' (they stay channels-last after inference, in training mode too).
    private static Tensor Plain(Tensor output) => output.is_contiguous() ? output : output.contiguous();

    private readonly object _layoutLock = new();

    /// <summary>
    /// In inference (eval mode, autograd off) on a float32 CPU that runs <see cref="GroupNormKernel"/>, stores the 3×3
    /// convolutions' weights channels-last (the first time; later calls find them so): oneDNN then keeps activations in
    /// that layout from one convolution to the next instead of reordering them around each (docs/performance.md: encode
    /// −5 to −7%, decode −7%), and the norms run on it through the kernel, whose variance does not cancel on flat images
    /// as libtorch's channels-last one does. The values are unchanged; results are the plain layout's to float32
    /// rounding (oneDNN's channels-last convolutions round a little more).
    /// </summary>
    private void PrepareForInference(Tensor input)
    {
        if (!this.InInference() || !GroupNormKernel.IsSupported || !InferenceKernels.Enabled
            || input.device_type != DeviceType.CPU || input.dtype != ScalarType.Float32) return;
        // Two threads encoding with one VAE must not both rewrite a weight.
        lock (_layoutLock)
        {
            foreach (var module in modules())
                if (module is Conv2d { weight: { } weight } && weight.dim() == 4 && weight.shape[2] == 3 && weight.shape[3] == 3
                    && weight.shape[1] > 1 && weight.dtype == ScalarType.Float32 && weight.device_type == DeviceType.CPU && weight.is_contiguous())
                    StoreChannelsLast(weight);
        }
    }

    /// <summary>
    /// Rewrites a contiguous [O, I, kh, kw] weight channels-last, values unchanged. A weight that owns its memory is
    /// rewritten within it: new memory per weight leaves the old blocks with the allocator, fragmented, and raised the
    /// VAE encode's peak by 0.27 GiB (measured). Another tensor viewing that memory would see the new order; the module's
    /// parameters are not shared that way. A weight that is part of a larger buffer gets memory of its own.
    /// </summary>
    internal static void StoreChannelsLast(Tensor weight)
    {
        using var _ = no_grad();
        long[] shape = weight.shape;
        long[] strides = [shape[1] * shape[2] * shape[3], 1, shape[3] * shape[1], shape[1]];
        using var values = weight.clone();
        bool ownsMemory;
        using (var storage = weight.storage<float>()) ownsMemory = weight.storage_offset() == 0 && storage.Count == weight.numel();
        using var channelsLast = ownsMemory
            ? weight.as_strided(shape, strides, weight.storage_offset())
            : torch.empty(shape[0], shape[2], shape[3], shape[1], dtype: weight.dtype).permute(0, 3, 1, 2);
        channelsLast.copy_(values);
        weight.set_(channelsLast);
    }

    /// <summary>Reconstructs <paramref name="sample"/> through the posterior mean (diffusers' forward with <c>sample_posterior=False</c>).</summary>
    public override Tensor forward(Tensor sample)
    {
        using var posterior = Encode(sample);
        return Decode(posterior.Mode());
    }

    /// <summary>
    /// Checkpoint keys written by diffusers before the attention refactor (SD 1.5's own VAE file is believed to
    /// use them): the mid blocks' <c>query</c>/<c>key</c>/<c>value</c>/<c>proj_attn</c> are today's
    /// <c>to_q</c>/<c>to_k</c>/<c>to_v</c>/<c>to_out.0</c>, with the same shapes. diffusers renames them on load too.
    /// </summary>
    public static KeyCompatibility LegacyKeys { get; } = BuildLegacyKeys();

    private static KeyCompatibility BuildLegacyKeys()
    {
        var aliases = new Dictionary<string, string>(StringComparer.Ordinal);
        (string Old, string New)[] renames = [("query", "to_q"), ("key", "to_k"), ("value", "to_v"), ("proj_attn", "to_out.0")];
        foreach (string part in new[] { "encoder", "decoder" })
            foreach (var (old, renamed) in renames)
                foreach (string tensor in new[] { "weight", "bias" })
                    aliases[$"{part}.mid_block.attentions.0.{old}.{tensor}"] = $"{part}.mid_block.attentions.0.{renamed}.{tensor}";
        return new KeyCompatibility(new HashSet<string>(), aliases);
    }

    /// <summary>
    /// Builds the VAE from <c>{component}/config.json</c> of a diffusers folder and loads its safetensors weights
    /// strictly, accepting the legacy attention names (<see cref="LegacyKeys"/>).
    /// </summary>
    /// <param name="folder">The model folder.</param>
    /// <param name="variant">Weights variant such as <c>fp16</c> (falls back to the plain file); weights are converted to float32.</param>
    /// <param name="component">The component folder.</param>
    /// <exception cref="DiffusersConfigException">The config cannot be built.</exception>
    /// <exception cref="WeightsException">The weights do not match the config.</exception>
    public static AutoencoderKL FromFolder(DiffusersFolder folder, string? variant = null, string component = "vae")
    {
        var config = AutoencoderKLConfig.Parse(folder.ComponentJson(component), Path.Combine(folder.Component(component), ConfigName));
        var files = folder.WeightFiles(component, variant);
        // Built on meta, then given empty storage: the strict load overwrites every parameter anyway.
        var model = new AutoencoderKL(config, new Device(DeviceType.META));
        try
        {
            MetaModules.ToEmpty(model, torch.CPU);
            StateDictLoader.Load(model, files, LegacyKeys);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>
    /// Writes <c>config.json</c> (every key, diffusers style) and <c>diffusion_pytorch_model.safetensors</c> (current
    /// key names) into <paramref name="componentFolder"/>.
    /// </summary>
    public void Save(string componentFolder)
    {
        Directory.CreateDirectory(componentFolder);
        SafeTensorsWriter.Write(Path.Combine(componentFolder, WeightsName), state_dict());
        DiffusersConfigWriter.Write(Path.Combine(componentFolder, ConfigName), Config.ToJson());
    }
}
