using SdPipeline.Config;
using SdPipeline.Hub;

namespace SdPipeline.BaseModel;

/// <summary>What <c>model.base</c> names: a builtin model, a Hub repository, a local diffusers folder, or a single-file checkpoint.</summary>
public abstract record BaseModelSource
{
    /// <summary>Parses <c>model.base</c>.</summary>
    /// <exception cref="ConfigException">An unknown builtin or a malformed Hub reference.</exception>
    public static BaseModelSource Parse(string text)
    {
        if (text.StartsWith("builtin:", StringComparison.Ordinal))
        {
            string name = text["builtin:".Length..];
            return name == "tiny"
                ? new Builtin(name)
                : throw new ConfigException($"model.base '{text}': unknown builtin model (known: builtin:tiny)");
        }
        if (HubModelRef.TryParse(text) is { } hub) return new FromHub(hub);
        if (text.Length == 0) throw new ConfigException("model.base is empty: give builtin:tiny, hf:org/name[@revision], a diffusers folder, or a single-file .safetensors");
        string path = Path.GetFullPath(text);
        if (File.Exists(path) && Path.GetExtension(path).Equals(".safetensors", StringComparison.OrdinalIgnoreCase)) return new SingleFile(path);
        return new Local(path);
    }

    /// <summary>A model the tool makes itself.</summary>
    /// <param name="Name">The builtin's name (<c>tiny</c>).</param>
    public sealed record Builtin(string Name) : BaseModelSource;

    /// <summary>A Hugging Face Hub repository.</summary>
    /// <param name="Model">Repository and revision.</param>
    public sealed record FromHub(HubModelRef Model) : BaseModelSource;

    /// <summary>An original-layout single-file checkpoint (<c>model.diffusion_model.*</c>, <c>first_stage_model.*</c>, <c>cond_stage_model.*</c>).</summary>
    /// <param name="File">Its absolute path.</param>
    public sealed record SingleFile(string File) : BaseModelSource;

    /// <summary>A diffusers folder on disk.</summary>
    /// <param name="Folder">Its absolute path.</param>
    public sealed record Local(string Folder) : BaseModelSource;
}
