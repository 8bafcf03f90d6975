using System.CommandLine;
using SdPipeline.Config;
using SdPipeline.Pipeline;

namespace SdPipeline.Cli;

/// <summary>The options every verb accepts.</summary>
internal static class GlobalOptions
{
    public static readonly Option<string> Config = new("--config")
    {
        Description = "Run profile (JSON).",
        DefaultValueFactory = _ => "configs/tiny.json",
        Recursive = true,
    };

    public static readonly Option<string[]> Set = new("--set")
    {
        Description = "Override one key: --set section.key=value (repeatable). `sdpipe config --defaults` lists the keys.",
        Recursive = true,
    };

    public static readonly Option<string> Artifacts = new("--artifacts")
    {
        Description = "Artifact store folder.",
        DefaultValueFactory = _ => "artifacts",
        Recursive = true,
    };

    public static readonly Option<string?> Device = new("--device")
    {
        Description = "Shorthand for --set runtime.device=VALUE (cpu, cuda, auto).",
        Recursive = true,
    };

    // Refused as the option it was typed as (the --set it stands for would name --set).
    static GlobalOptions() => Device.AcceptOnlyFromAmong("cpu", "cuda", "auto");

    public static void AddTo(RootCommand root)
    {
        root.Options.Add(Config);
        root.Options.Add(Set);
        root.Options.Add(Artifacts);
        root.Options.Add(Device);
    }

    /// <summary>The effective config of this invocation.</summary>
    public static EffectiveConfig LoadConfig(ParseResult result)
    {
        var overrides = (result.GetValue(Set) ?? []).ToList();
        if (result.GetValue(Device) is { } device) overrides.Add($"runtime.device={device}");
        return ConfigLoader.Load(result.GetValue(Config), overrides);
    }

    /// <summary>The artifact store of this invocation.</summary>
    public static ArtifactStore Store(ParseResult result) => new(result.GetValue(Artifacts)!);

    /// <summary>The file-hash cache kept in the store.</summary>
    public static FileHashCache Hashes(ArtifactStore store) => new(Path.Combine(store.SharedDirectory("hashes"), "files.json"));
}
