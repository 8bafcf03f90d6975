using SdPipeline.Images;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Sampling;

/// <summary>Decoded VAE output (≈ [-1, 1], NCHW) to 8-bit images, as diffusers' VaeImageProcessor does.</summary>
public static class ImagePostprocessor
{
    /// <summary><c>clamp(x / 2 + 0.5, 0, 1)</c>, in float32.</summary>
    public static Tensor ToUnitRange(Tensor decoded) => (decoded.to(ScalarType.Float32) / 2 + 0.5).clamp(0, 1);

    /// <summary><c>round(unit · 255)</c> as uint8 NHWC (PyTorch rounds half to even, as NumPy does).</summary>
    public static Tensor ToUint8(Tensor unit) => (unit * 255).round().to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous();

    /// <summary>One <see cref="RgbImage"/> per batch element of decoded VAE output.</summary>
    public static IReadOnlyList<RgbImage> ToImages(Tensor decoded)
    {
        using var scope = torch.NewDisposeScope();
        var bytes = ToUint8(ToUnitRange(decoded)).cpu();
        int count = (int)bytes.shape[0], height = (int)bytes.shape[1], width = (int)bytes.shape[2];
        var all = bytes.data<byte>().ToArray();
        int size = height * width * 3;
        return Enumerable.Range(0, count).Select(i => new RgbImage(width, height, all[(i * size)..((i + 1) * size)])).ToList();
    }
}
