using SdPipeline.Tests.Support;
using SdPipeline.Weights;

namespace SdPipeline.Tests.Sdxl;

/// <summary>Where the SDXL fixtures are: <c>tiny-sdxl/</c> (the model) and <c>parity-sdxl/</c> (diffusers' tensors).</summary>
internal static class TinySdxl
{
    // fixtures README, SDXL section: text encoders, prompt embeds, pooled embeds and the UNet within atol 1e-4.
    public const double ModelTolerance = 1e-4;

    public static string Folder => Path.Combine(RepoPaths.Fixtures, "tiny-sdxl");

    public static DiffusersFolder Open() => DiffusersFolder.Open(Folder);

    public static FixtureTensors Parity(string name) => FixtureTensors.Open(Path.Combine("parity-sdxl", name + ".safetensors"));

    public static string ParityFolder => Path.Combine(RepoPaths.Fixtures, "parity-sdxl");
}
