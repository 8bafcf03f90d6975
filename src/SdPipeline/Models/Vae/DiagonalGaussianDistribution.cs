using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Vae;

/// <summary>
/// The encoder's posterior over latents: a diagonal Gaussian from the <c>quant_conv</c> output's two channel halves,
/// the log-variance clamped to [-30, 20].
/// </summary>
/// <remarks>Mirrors diffusers.models.autoencoders.vae.DiagonalGaussianDistribution (not deterministic).</remarks>
public sealed class DiagonalGaussianDistribution : IDisposable
{
    /// <summary>The <c>quant_conv</c> output [B, 2C, h, w] (mean, unclamped log-variance) the distribution was built from.</summary>
    public Tensor Parameters { get; }

    /// <summary>Mean [B, C, h, w].</summary>
    public Tensor Mean { get; }

    /// <summary>Clamped log-variance [B, C, h, w].</summary>
    public Tensor LogVar { get; }

    /// <summary>Standard deviation <c>exp(0.5·logvar)</c>.</summary>
    public Tensor Std { get; }

    /// <summary>Variance <c>exp(logvar)</c>.</summary>
    public Tensor Var { get; }

    /// <summary>Splits <paramref name="parameters"/> [B, 2C, h, w] into mean and log-variance.</summary>
    public DiagonalGaussianDistribution(Tensor parameters)
    {
        Parameters = parameters;
        var halves = parameters.chunk(2, dim: 1);
        Mean = halves[0];
        LogVar = torch.clamp(halves[1], -30.0, 20.0);
        Std = torch.exp(0.5 * LogVar);
        Var = torch.exp(LogVar);
    }

    /// <summary>A sample <c>mean + std·ε</c> with ε ~ N(0, I) drawn from <paramref name="generator"/> (or the global one).</summary>
    public Tensor Sample(Generator? generator = null) =>
        Sample(torch.randn(Mean.shape, dtype: Mean.dtype, device: Mean.device, generator: generator));

    /// <summary>The sample <c>mean + std·<paramref name="noise"/></c> for given standard normal noise.</summary>
    public Tensor Sample(Tensor noise) => Mean + Std * noise;

    /// <summary>The mode, i.e. the mean.</summary>
    public Tensor Mode() => Mean;

    /// <inheritdoc />
    public void Dispose()
    {
        Parameters.Dispose();
        Mean.Dispose();
        LogVar.Dispose();
        Std.Dispose();
        Var.Dispose();
    }
}
