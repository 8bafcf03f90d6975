using Newtonsoft.Json;
using SdPipeline.Config;
using SdPipeline.Files;
using SdPipeline.Weights;

namespace SdPipeline.BaseModel;

/// <summary>
/// <c>model.json</c>, the model stage's output: where the diffusers folder is and what its files are.
/// Downstream stages read the folder from here, never from the config, so they follow the weights.
/// </summary>
public sealed record ResolvedModel
{
    /// <summary>The file name inside the model artifact.</summary>
    public const string FileName = "model.json";

    /// <summary><c>builtin</c>, <c>hub</c> or <c>local</c>.</summary>
    public required string Kind { get; init; }

    /// <summary>What <c>model.base</c> said.</summary>
    public required string Source { get; init; }

    /// <summary>The diffusers folder: absolute, or relative to the model artifact (builtin models live inside it). <see cref="Read"/> makes it absolute.</summary>
    public required string Folder { get; init; }

    /// <summary>The Hub commit, for Hub models.</summary>
    public string? Commit { get; init; }

    /// <summary>The precision variant of the weights, if any.</summary>
    public string? Variant { get; init; }

    /// <summary>Path inside the folder → content hash, for every file the pipeline reads.</summary>
    public required IReadOnlyDictionary<string, string> ContentHashes { get; init; }

    private static readonly JsonSerializerSettings Settings = new()
    {
        ContractResolver = ConfigSchema.Serializer.ContractResolver,
        Formatting = Formatting.Indented,
    };

    /// <summary>Writes <c>model.json</c> into <paramref name="folder"/>.</summary>
    public void Write(string folder) => AtomicFile.WriteAllText(Path.Combine(folder, FileName), JsonConvert.SerializeObject(this, Settings));

    /// <summary>Reads the <c>model.json</c> of a model artifact.</summary>
    public static ResolvedModel Read(string artifactFolder)
    {
        string path = Path.Combine(artifactFolder, FileName);
        var model = JsonConvert.DeserializeObject<ResolvedModel>(File.ReadAllText(path), Settings)
            ?? throw new InvalidDataException($"{path}: empty");
        return model with { Folder = Path.GetFullPath(model.Folder, artifactFolder) };
    }

    /// <summary>The model folder, its weights read in the resolved precision variant (what the model stage fetched and fingerprinted).</summary>
    public DiffusersFolder Open() => DiffusersFolder.Open(Folder, Variant);
}
