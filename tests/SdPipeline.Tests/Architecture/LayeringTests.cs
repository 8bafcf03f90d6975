using System.Text.RegularExpressions;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Architecture;

/// <summary>
/// The layers of docs/architecture.md hold in the compiled library: a namespace uses only the namespaces the
/// document's table lets it import, apart from the upward imports the document lists as still to remove.
/// </summary>
public sealed partial class LayeringTests
{
    private static readonly string Document = Path.Combine(RepoPaths.Root, "docs", "architecture.md");

    [Test]
    public void Library_Should_ImportOnlyDownward_When_ReadFromItsCompiledCode()
    {
        // Given the rules of docs/architecture.md and every namespace-to-namespace use in the compiled library
        var (mayImport, knownUpward) = ReadRules();
        var uses = Uses();

        // Then every use is allowed by the table or listed as an upward import still to remove
        var unknownUnits = uses.Keys.SelectMany(k => new[] { k.From, k.To }).Distinct().Where(u => !mayImport.ContainsKey(u)).ToList();
        Assert.That(unknownUnits, Is.Empty, "namespaces missing from the table of docs/architecture.md");
        var violations = uses
            .Where(u => !mayImport[u.Key.From].Contains(u.Key.To) && !knownUpward.Contains(u.Key))
            .Select(u => $"{u.Key.From} → {u.Key.To} (e.g. {u.Value})")
            .ToList();
        Assert.That(violations, Is.Empty, "imports that docs/architecture.md does not allow");
    }

    [Test]
    public void KnownUpwardImports_Should_StillExist_When_Listed()
    {
        // A listed upward import that has been removed must leave the list, so the list only ever shrinks.
        var (_, knownUpward) = ReadRules();
        var uses = Uses();
        Assert.That(knownUpward.Where(k => !uses.ContainsKey(k)).Select(k => $"{k.From} → {k.To}"), Is.Empty,
            "upward imports listed in docs/architecture.md that no longer exist: remove them from the list");
    }

    [Test]
    public void Table_Should_DescribeLayers_When_ReadAsAGraph()
    {
        // What the table allows must itself be acyclic, so that the imports it admits cannot form a cycle: peel off,
        // round by round, the folders that import nothing not yet peeled.
        var (mayImport, knownUpward) = ReadRules();
        var placed = new HashSet<string>();
        while (placed.Count < mayImport.Count)
        {
            var next = mayImport.Where(m => !placed.Contains(m.Key) && m.Value.All(placed.Contains)).Select(m => m.Key).ToList();
            Assert.That(next, Is.Not.Empty, $"the table has a cycle among: {string.Join(", ", mayImport.Keys.Where(k => !placed.Contains(k)))}");
            placed.UnionWith(next);
        }
        Assert.That(knownUpward.Where(k => mayImport.GetValueOrDefault(k.From)?.Contains(k.To) == true), Is.Empty, "an upward import the table also allows");
    }

    [Test]
    public void Models_Should_ImportNothingButWeightsFilesAndErrors_When_Compiled()
    {
        // The bottom of the stack, stated on its own: a diffusers engineer reading Models/ meets no training, LoRA or stage code
        // (Errors is the base class its DiffusersConfigException derives from, so the CLI can map it to an exit code).
        var uses = Uses().Where(u => u.Key.From == "Models").Select(u => u.Key.To).Order().ToList();
        Assert.That(uses, Is.SubsetOf(new[] { "Errors", "Files", "Weights" }));
    }

    // The unit of a namespace: its first segment under SdPipeline, except Training's precision, checkpointing and optimization,
    // which sit below the rest of Training.
    private static string UnitOf(string ns)
    {
        string name = ns["SdPipeline.".Length..];
        foreach (var split in new[] { "Training.Precision", "Training.Checkpointing", "Training.Optimization" })
            if (name == split || name.StartsWith(split + ".", StringComparison.Ordinal)) return split;
        return name.Split('.')[0];
    }

    private static Dictionary<(string From, string To), string> Uses()
    {
        var uses = new Dictionary<(string, string), string>();
        foreach (var (from, to) in AssemblyReferences.Of(typeof(SdPipeline.Files.AtomicFile).Assembly))
        {
            if (from.Namespace is not { } a || to.Namespace is not { } b) continue;
            if (!a.StartsWith("SdPipeline.", StringComparison.Ordinal) || !b.StartsWith("SdPipeline.", StringComparison.Ordinal)) continue;
            var key = (UnitOf(a), UnitOf(b));
            if (key.Item1 != key.Item2) uses.TryAdd(key, $"{from.FullName} uses {to.FullName}");
        }
        return uses;
    }

    // | `Folder` | `Allowed`, `Allowed` | ... rows of the "What each folder may import" table, and the
    // `From` → `To` items of the "Upward imports still to remove" list.
    private static (Dictionary<string, HashSet<string>> MayImport, HashSet<(string From, string To)> KnownUpward) ReadRules()
    {
        string text = File.ReadAllText(Document);
        var mayImport = new Dictionary<string, HashSet<string>>();
        foreach (Match row in TableRow().Matches(text))
            mayImport[row.Groups["unit"].Value] = [.. Code().Matches(row.Groups["imports"].Value).Select(m => m.Groups[1].Value)];
        var knownUpward = UpwardItem().Matches(text).Select(m => (m.Groups["from"].Value, m.Groups["to"].Value)).ToHashSet();
        Assert.That(mayImport, Is.Not.Empty, $"{Document} has no table of what each folder may import");
        return (mayImport, knownUpward);
    }

    [GeneratedRegex(@"^\| `(?<unit>[A-Za-z.]+)/` \|(?<imports>[^|]*)\|", RegexOptions.Multiline)]
    private static partial Regex TableRow();

    [GeneratedRegex(@"`([A-Za-z.]+)`")]
    private static partial Regex Code();

    [GeneratedRegex(@"^- upward: `(?<from>[A-Za-z.]+)` → `(?<to>[A-Za-z.]+)`", RegexOptions.Multiline)]
    private static partial Regex UpwardItem();
}
