using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Vae;

/// <summary>The tiny VAE against diffusers' outputs on the same weights and inputs (fixtures/parity/vae.*).</summary>
public sealed class VaeParityTests
{
    // fixtures/README.md: VAE outputs within atol 1e-4 of float32 diffusers.
    private const double Tolerance = 1e-4;

    private static AutoencoderKL LoadTinyVae() =>
        AutoencoderKL.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));

    private static SafeTensorsFile OpenFixture() => SafeTensorsFile.Open(Path.Combine(RepoPaths.Fixtures, "parity", "vae.safetensors"));

    [Test]
    public void Encode_Should_MatchDiffusersPosterior()
    {
        // Given the tiny VAE and the recorded image
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var vae = LoadTinyVae();
        vae.eval();
        using var fixture = OpenFixture();

        // When it encodes
        using var posterior = vae.Encode(fixture.Read("image"));

        // Then mean, clamped log-variance, std and a sample with the recorded noise equal diffusers'
        var errors = new Dictionary<string, double>
        {
            ["mean"] = MaxAbsDiff(posterior.Mean, fixture.Read("mean")),
            ["logvar"] = MaxAbsDiff(posterior.LogVar, fixture.Read("logvar")),
            ["std"] = MaxAbsDiff(posterior.Std, fixture.Read("std")),
            ["latent_sample"] = MaxAbsDiff(posterior.Sample(fixture.Read("sample_eps")), fixture.Read("latent_sample")),
            ["moments"] = MaxAbsDiff(posterior.Parameters, fixture.Read("moments")),
        };
        TestContext.Out.WriteLine(string.Join(", ", errors.Select(e => $"{e.Key} {e.Value:E2}")));
        Assert.That(errors.Values, Is.All.LessThan(Tolerance));
    }

    [Test]
    public void Decode_Should_MatchDiffusers()
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var vae = LoadTinyVae();
        vae.eval();
        using var fixture = OpenFixture();

        var decoded = vae.Decode(fixture.Read("decode_input"));
        var decodedMean = vae.Decode(fixture.Read("mean"));

        double error = MaxAbsDiff(decoded, fixture.Read("decode_output"));
        double errorOfMean = MaxAbsDiff(decodedMean, fixture.Read("decode_of_mean"));
        TestContext.Out.WriteLine($"decode_output {error:E2}, decode_of_mean {errorOfMean:E2}");
        Assert.That(error, Is.LessThan(Tolerance));
        Assert.That(errorOfMean, Is.LessThan(Tolerance));
    }

    private static double MaxAbsDiff(Tensor actual, Tensor expected)
    {
        Assert.That(actual.shape, Is.EqualTo(expected.shape));
        return (actual - expected).abs().max().item<float>();
    }
}
