using System.Text.RegularExpressions;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Files;

namespace SdPipeline.Pipeline;

/// <summary>
/// The files by which <c>sdpipe gc</c> knows what it made: a marker at the store's root, written when the
/// store is first built into, and one inside each build folder (<c>.FP.partial</c>) naming the stage, the
/// fingerprint and the upstream artifacts the build reads. gc removes nothing it cannot recognise this way
/// (or by a finished artifact's manifest), so pointing <c>--artifacts</c> at the wrong folder costs nothing.
/// </summary>
public static partial class StoreMarkers
{
    /// <summary>The marker at the store's root.</summary>
    public const string StoreFileName = ".sdpipe-store";

    /// <summary>The marker inside a build folder (removed before the folder is renamed into place).</summary>
    public const string PartialFileName = ".sdpipe-partial";

    /// <summary>Marks <paramref name="root"/> as a store (creating it), unless it already is one.</summary>
    public static void MarkStore(string root)
    {
        string marker = Path.Combine(root, StoreFileName);
        if (File.Exists(marker)) return;
        Directory.CreateDirectory(root);
        AtomicFile.WriteAllText(marker, new JObject
        {
            ["tool"] = "sdpipe",
            ["tool_version"] = ArtifactStore.ToolVersion,
            ["created_at"] = DateTime.UtcNow,
            ["note"] = "An sdpipe artifact store: `sdpipe gc` removes only the artifacts and build leftovers it made here.",
        }.ToString(Formatting.Indented));
    }

    /// <summary>Whether <paramref name="root"/> carries the store marker.</summary>
    public static bool IsMarkedStore(string root) => File.Exists(Path.Combine(root, StoreFileName));

    /// <summary>Writes the marker of a build of <paramref name="inputs"/> into its folder.</summary>
    public static void MarkPartial(string partial, FingerprintInputs inputs, string fingerprint) =>
        AtomicFile.WriteAllText(Path.Combine(partial, PartialFileName), new JObject
        {
            ["stage"] = inputs.Stage,
            ["fingerprint"] = fingerprint,
            ["upstream"] = JObject.FromObject(inputs.Upstream),
        }.ToString(Formatting.Indented));

    /// <summary>The build marker in <paramref name="partial"/>, when it is there and readable.</summary>
    public static PartialMarker? ReadPartial(string partial)
    {
        try
        {
            var json = JObject.Parse(File.ReadAllText(Path.Combine(partial, PartialFileName)));
            if (json.Value<string>("stage") is not { } stage || json.Value<string>("fingerprint") is not { } fingerprint) return null;
            var upstream = (json["upstream"] as JObject)?.Properties()
                .Where(p => p.Value.Type == JTokenType.String)
                .ToDictionary(p => p.Name, p => p.Value.Value<string>()!) ?? [];
            return new PartialMarker(stage, fingerprint, upstream);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>A finished artifact's folder name: the fingerprint's first 16 hex digits.</summary>
    [GeneratedRegex("^[0-9a-f]{16}$")]
    public static partial Regex ArtifactName();

    /// <summary>A build folder's name, <c>.FP.partial</c>.</summary>
    [GeneratedRegex(@"^\.([0-9a-f]{16})\.partial$")]
    public static partial Regex PartialName();

    /// <summary>A replaced artifact on its way out, <c>.FP.trash-GUID</c>.</summary>
    [GeneratedRegex(@"^\.([0-9a-f]{16})\.trash-[0-9a-f]{32}$")]
    public static partial Regex TrashName();
}

/// <summary>What a build folder's marker says.</summary>
/// <param name="Stage">The stage being built.</param>
/// <param name="Fingerprint">Its full fingerprint.</param>
/// <param name="Upstream">Fingerprints of the upstream artifacts the build reads, by stage.</param>
public sealed record PartialMarker(string Stage, string Fingerprint, IReadOnlyDictionary<string, string> Upstream);
