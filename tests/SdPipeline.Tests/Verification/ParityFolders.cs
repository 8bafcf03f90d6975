using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Verification;

/// <summary>Parity folders a test may alter: chosen fixture pairs of shared/fixtures/parity, copied.</summary>
internal static class ParityFolders
{
    public static string Source => Path.Combine(RepoPaths.Fixtures, "parity");

    /// <summary>Copies NAME.safetensors and NAME.json of each fixture into <paramref name="folder"/> (created).</summary>
    public static string CopyTo(string folder, params string[] names)
    {
        Directory.CreateDirectory(folder);
        foreach (string name in names)
            foreach (string extension in new[] { ".safetensors", ".json" })
                File.Copy(Path.Combine(Source, name + extension), Path.Combine(folder, name + extension));
        return folder;
    }
}
