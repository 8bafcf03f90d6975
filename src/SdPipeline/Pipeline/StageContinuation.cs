using SdPipeline.Config;

namespace SdPipeline.Pipeline;

/// <summary>
/// An earlier artifact of the same stage that a stale stage may continue instead of starting over: built from the
/// same upstream artifacts, external inputs and schema version, its config differing from the current one. The stage's
/// <see cref="StageDefinition.Continuation"/> judges whether continuing it gives what starting over would.
/// </summary>
/// <param name="Config">The current effective config.</param>
/// <param name="Current">The current fingerprint inputs (what the new artifact's fingerprint is of).</param>
/// <param name="Earlier">The earlier artifact's manifest.</param>
/// <param name="Folder">The earlier artifact's folder.</param>
public sealed record ContinuationCandidate(EffectiveConfig Config, FingerprintInputs Current, Manifest Earlier, string Folder)
{
    /// <summary>The config keys (as the fingerprint slices them) whose values differ between the two.</summary>
    public IReadOnlyList<string> ChangedKeys() =>
        Current.Config.Properties().Select(p => p.Name).Union(Earlier.Inputs().Config.Properties().Select(p => p.Name))
            .Where(key => !Newtonsoft.Json.Linq.JToken.DeepEquals(Current.Config[key], Earlier.Inputs().Config[key]))
            .Order(StringComparer.Ordinal)
            .ToList();
}

/// <summary>A stage's answer about one <see cref="ContinuationCandidate"/>.</summary>
/// <param name="Position">How far the earlier artifact got (the furthest continuable one is chosen), when it can be continued.</param>
/// <param name="From">What it continues from, for people ("step 20").</param>
/// <param name="StartOverReason">Why it cannot be continued although it differs only in what could be extended; null otherwise.</param>
public sealed record ContinuationVerdict(long Position, string? From, string? StartOverReason)
{
    /// <summary>The earlier artifact can be continued from <paramref name="from"/>.</summary>
    public static ContinuationVerdict ContinueFrom(long position, string from) => new(position, from, null);

    /// <summary>The earlier artifact is a shorter version of this one but continuing it would not give the same result.</summary>
    public static ContinuationVerdict StartOver(string reason) => new(0, null, reason);
}

/// <summary>The earlier artifact a stale stage continues from.</summary>
/// <param name="Fingerprint">Its full fingerprint.</param>
/// <param name="Folder">Its folder.</param>
/// <param name="Position">How far it got (the train stage: its optimizer steps).</param>
/// <param name="From">What it continues from, for people ("step 20").</param>
public sealed record StageContinuation(string Fingerprint, string Folder, long Position, string From)
{
    /// <summary>The plan's line: "continues from step 20 of [0f1e2d3c4b5a6978]".</summary>
    public string Describe() => $"continues from {From} of [{ArtifactStore.Short(Fingerprint)}]";
}
