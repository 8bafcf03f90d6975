using SdPipeline.Models.Shared;
using SdPipeline.Models.Vae;
using SdPipeline.Numerics;
using SdPipeline.Pipeline;
using TorchSharp;
using SdPipeline.Weights;

namespace SdPipeline.BaseModel;

/// <summary>Models the tool makes itself, offline and deterministically.</summary>
public static class BuiltinModels
{
    /// <summary>Bumped whenever a builtin's architecture, initialisation or training changes.</summary>
    public const int Version = 3;

    /// <summary>The identity of a builtin in fingerprints: its name, generator version, seed and autoencoder training.</summary>
    public static string Identity(string name, int seed, int autoencoderSteps) => $"{name} v{Version} seed {seed} autoencoder steps {autoencoderSteps}";

    /// <summary>Writes the builtin model into <c>model/</c> of the stage's folder.</summary>
    public static ResolvedModel Create(string name, int seed, int autoencoderSteps, StageWorkspace workspace)
    {
        string folder = Path.Combine(workspace.Directory, "model");
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true); // an interrupted run's leftovers
        // The trained autoencoder's scaling factor comes from an encode in inference.
        InferenceKernels.Use(workspace.Config.Typed.Runtime.Kernels);
        if (autoencoderSteps > 0)
        {
            // The autoencoder trains through its decoder's 3-channel conv_out, the class of convolution oneDNN gets wrong on some CPUs.
            using var architecture = new AutoencoderKL(AutoencoderKLConfig.Parse(BuiltinTiny.VaeConfig, "builtin:tiny vae"), torch.META);
            NumericsGuard.Ensure(OperationInventory.Of(architecture), torch.CPU, [torch.ScalarType.Float32], workspace.Config.Typed.Runtime.Onednn, workspace.Log);
        }
        var training = BuiltinTiny.Write(folder, seed, autoencoderSteps, workspace.Progress, workspace.Cancellation);
        if (training is not null)
            workspace.Log($"model: trained the autoencoder for {training.Steps} steps in {training.Seconds:0} s: reconstruction MSE {training.ReconstructionError:0.0000}, scaling factor {training.ScalingFactor:0.0000}");
        var hashes = ModelFiles.Select(DiffusersFolder.Open(folder), null)
            .ToDictionary(f => f, f => FileHashCache.HashFile(Path.Combine(folder, f)), StringComparer.Ordinal);
        // Relative: the stage's folder is renamed into place after this returns.
        return new ResolvedModel { Kind = "builtin", Source = $"builtin:{name}", Folder = "model", ContentHashes = hashes };
    }
}
