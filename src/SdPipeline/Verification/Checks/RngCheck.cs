using System.Globalization;
using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>rng</c>: whether TorchSharp's CPU generator draws PyTorch's streams. Tensors named
/// <c>genSEED.OP_DIMS</c> are drawn in the sidecar's order from one <c>Generator(SEED)</c>; <c>globalSEED.OP_DIMS</c>
/// from the global generator after <c>manual_seed(SEED)</c>. OP is <c>randn</c>, <c>rand</c> or
/// <c>randint_LOW_HIGH</c>; DIMS like <c>2x4x32x32</c>. Draws must be bit-identical.
/// </summary>
internal sealed partial class RngCheck : IParityCheck
{
    public IReadOnlyList<string> Components { get; } = [];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        // The sidecar lists the draws in the order they were made; the safetensors header need not.
        var names = fixture.Setting<JObject>("tensors")?.Properties().Select(p => p.Name).ToList() ?? fixture.Keys.ToList();
        foreach (var stream in names.GroupBy(n => n.Split('.', 2)[0]))
            rows.Check($"{fixture.Name}.{stream.Key}", () => CompareStream(fixture, stream.Key, stream.ToList()), "bit-identical draws");
    }

    private static List<TensorComparison> CompareStream(ParityFixture fixture, string stream, List<string> names)
    {
        var match = StreamName().Match(stream);
        if (!match.Success) throw new ParityFixtureException($"'{stream}': expected genSEED or globalSEED");
        ulong seed = ulong.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
        if (match.Groups[1].Value == "gen")
        {
            using var generator = new torch.Generator(seed);
            return names.Select(n => Compare(fixture, n, generator)).ToList();
        }

        var saved = torch.Generator.Default.get_state();
        try
        {
            torch.manual_seed((long)seed);
            return names.Select(n => Compare(fixture, n, null)).ToList();
        }
        finally
        {
            torch.Generator.Default.set_state(saved);
        }
    }

    private static TensorComparison Compare(ParityFixture fixture, string name, torch.Generator? generator)
    {
        var match = DrawName().Match(name.Split('.', 2)[1]);
        if (!match.Success) throw new ParityFixtureException($"'{name}': expected randn_DIMS, rand_DIMS or randint_LOW_HIGH_DIMS");
        long[] shape = match.Groups["dims"].Value.Split('x').Select(d => long.Parse(d, CultureInfo.InvariantCulture)).ToArray();
        var draw = match.Groups["op"].Value switch
        {
            "randn" => randn(shape, generator: generator),
            "rand" => rand(shape, generator: generator),
            _ => randint(long.Parse(match.Groups["low"].Value, CultureInfo.InvariantCulture), long.Parse(match.Groups["high"].Value, CultureInfo.InvariantCulture),
                shape, generator: generator),
        };
        return TensorComparison.Of(name, draw, fixture.Get(name), ParityTolerance.Exact);
    }

    [GeneratedRegex(@"^(gen|global)(\d+)$")]
    private static partial Regex StreamName();

    [GeneratedRegex(@"^(?<op>randn|rand|randint_(?<low>-?\d+)_(?<high>-?\d+))_(?<dims>\d+(x\d+)*)$")]
    private static partial Regex DrawName();
}
