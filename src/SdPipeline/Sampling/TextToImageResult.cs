using SdPipeline.Images;
using static TorchSharp.torch;

namespace SdPipeline.Sampling;

/// <summary>The images of a <see cref="StableDiffusionPipeline.Generate"/> call, with the tensors behind them.</summary>
/// <param name="Images">One 8-bit image per prompt.</param>
/// <param name="Latents">Final latents [B, C, h, w] (CPU).</param>
/// <param name="Decoded">Raw VAE output [B, 3, H, W], ≈ [-1, 1] (CPU).</param>
public sealed record TextToImageResult(IReadOnlyList<RgbImage> Images, Tensor Latents, Tensor Decoded);
