using SdPipeline.Images;

namespace SdPipeline.Reporting;

/// <summary>One generated image.</summary>
/// <param name="Seed">The seed it was sampled with.</param>
/// <param name="Png">The encoded image (PNG as the sample stage writes it; any format <see cref="Images.ImageCodec"/> decodes).</param>
/// <param name="Flags">Why it looks wrong (all black, constant, not decodable); empty when it looks fine.</param>
public sealed record SampleImage(long Seed, byte[] Png, IReadOnlyList<string> Flags)
{
    /// <summary>An image with its flags computed by <see cref="ImageFlags"/>.</summary>
    public static SampleImage FromPng(long seed, byte[] png) =>
        new(seed, png, ImageFlags.Check(png) is { } flag ? [flag] : []);

    /// <summary>An image read from a file, with its flags computed.</summary>
    public static SampleImage FromFile(long seed, string path) => FromPng(seed, File.ReadAllBytes(path));
}
