using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models;

/// <summary>Copies of fixtures/tiny-sd (model_index.json plus chosen components) that a test may alter.</summary>
internal static class TinySdFolder
{
    public static string Source => Path.Combine(RepoPaths.Fixtures, "tiny-sd");

    /// <summary>Copies model_index.json and the <paramref name="components"/> folders into <paramref name="root"/>.</summary>
    public static DiffusersFolder CopyTo(string root, params string[] components)
    {
        File.Copy(Path.Combine(Source, "model_index.json"), Path.Combine(root, "model_index.json"));
        foreach (string component in components)
        {
            Directory.CreateDirectory(Path.Combine(root, component));
            foreach (string file in Directory.GetFiles(Path.Combine(Source, component)))
                File.Copy(file, Path.Combine(root, component, Path.GetFileName(file)));
        }
        return DiffusersFolder.Open(root);
    }

    /// <summary>Rewrites a component's weights through <paramref name="edit"/>.</summary>
    public static void EditWeights(string root, string component, Action<Dictionary<string, Tensor>> edit)
    {
        string path = Path.Combine(root, component, "diffusion_pytorch_model.safetensors");
        Dictionary<string, Tensor> tensors;
        using (var file = SafeTensorsFile.Open(path)) tensors = file.ReadAll();
        edit(tensors);
        SafeTensorsWriter.Write(path, tensors);
    }
}
