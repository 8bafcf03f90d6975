using SdPipeline.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

/// <summary>
/// A seeded TorchSharp generator draws PyTorch's CPU stream (parity/rng.safetensors): so DDPM and Euler-ancestral
/// steps given a generator reproduce diffusers' samples from the same seed.
/// </summary>
public sealed class TorchGeneratorTests
{
    [Test]
    public void Draws_Should_EqualPyTorchs_When_GeneratorIsSeededTheSame()
    {
        using var scope = NewDisposeScope();
        using var rng = FixtureTensors.OpenParity("rng");
        // Given torch.Generator().manual_seed(1234)
        using var generator = new torch.Generator(1234);

        // When the fixture's draws are repeated in order
        var draws = new (string Name, Tensor Value)[]
        {
            ("gen1234.randn_5", randn(new long[] { 5 }, generator: generator)),
            ("gen1234.randn_16", randn(new long[] { 16 }, generator: generator)),
            ("gen1234.randn_2x4x32x32", randn(new long[] { 2, 4, 32, 32 }, generator: generator)),
            ("gen1234.rand_8", rand(new long[] { 8 }, generator: generator)),
            ("gen1234.randint_0_1000_8", randint(0, 1000, new long[] { 8 }, generator: generator)),
        };

        // Then every value is bit-identical (the scalar path below 16 values and the vectorised one above)
        foreach (var (name, value) in draws)
            Assert.That(SchedulerFixtures.MaxAbsDiff(value, rng.Get(name)), Is.EqualTo(0), name);
    }

    [Test]
    public void GlobalDraws_Should_EqualPyTorchs_When_GlobalSeedIsSet()
    {
        using var scope = NewDisposeScope();
        using var rng = FixtureTensors.OpenParity("rng");
        var saved = torch.Generator.Default.get_state();
        try
        {
            torch.manual_seed(42);

            var draw = randn(1, 4, 64, 64);

            Assert.That(SchedulerFixtures.MaxAbsDiff(draw, rng.Get("global42.randn_1x4x64x64")), Is.EqualTo(0));
        }
        finally
        {
            torch.Generator.Default.set_state(saved);
        }
    }
}
