using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// The sinusoidal timestep embedding (no weights): <c>exp(-ln(10000)·i/(half − shift))</c> frequencies,
/// sin and cos halves, cos first when <c>flip_sin_to_cos</c>. Always float32, as in diffusers.
/// </summary>
/// <remarks>Mirrors diffusers.models.embeddings.Timesteps / get_timestep_embedding.</remarks>
public sealed class Timesteps : nn.Module<Tensor, Tensor>
{
    private const double MaxPeriod = 10000;

    private readonly long _numChannels;
    private readonly bool _flipSinToCos;
    private readonly double _downscaleFreqShift;

    /// <summary>Creates the embedding.</summary>
    /// <param name="numChannels">Embedding width.</param>
    /// <param name="flipSinToCos">Put the cos half first.</param>
    /// <param name="downscaleFreqShift">diffusers' <c>freq_shift</c>.</param>
    public Timesteps(long numChannels, bool flipSinToCos, double downscaleFreqShift) : base(nameof(Timesteps))
    {
        _numChannels = numChannels;
        _flipSinToCos = flipSinToCos;
        _downscaleFreqShift = downscaleFreqShift;
    }

    /// <summary>Embeds 1-D <paramref name="timesteps"/> [B] (integer or float) into [B, numChannels] float32.</summary>
    public override Tensor forward(Tensor timesteps)
    {
        if (timesteps.dim() != 1) throw new ArgumentException($"timesteps must be 1-D, got shape [{string.Join(", ", timesteps.shape)}]", nameof(timesteps));
        long half = _numChannels / 2;
        // Same operation order as diffusers so the float32 frequencies match bit for bit.
        var exponent = torch.arange(0, half, dtype: ScalarType.Float32, device: timesteps.device) * -Math.Log(MaxPeriod);
        exponent = exponent / (half - _downscaleFreqShift);
        var frequencies = torch.exp(exponent);
        var angles = timesteps.unsqueeze(1).to(ScalarType.Float32) * frequencies.unsqueeze(0);
        // Held until cat has returned, then disposed: TorchSharp does not keep its arguments alive, and without a
        // dispose scope (a test calling the module directly) a temporary could be finalized while libtorch reads it.
        var cos = torch.cos(angles);
        var sin = torch.sin(angles);
        var embedding = _flipSinToCos ? torch.cat([cos, sin], dim: -1) : torch.cat([sin, cos], dim: -1);
        cos.Dispose();
        sin.Dispose();
        return _numChannels % 2 == 1 ? nn.functional.pad(embedding, [0, 1, 0, 0]) : embedding;
    }
}
