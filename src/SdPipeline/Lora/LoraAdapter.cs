using SdPipeline.Training.Precision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Lora;

/// <summary>
/// The low-rank update of one linear or convolution layer: <c>y += strength · (alpha / r) · up(down(dropout(x)))</c>.
/// <c>down</c> is PEFT's <c>lora_A</c> (kohya's <c>lora_down</c>): [r, in] for a linear layer, or a convolution with the
/// layer's kernel, stride and padding [r, in, k, k]; <c>up</c> is <c>lora_B</c> (<c>lora_up</c>): [out, r], or a 1×1
/// convolution [out, r, 1, 1] — the shapes PEFT and kohya's sd-scripts give their modules. It follows the
/// <see cref="Autocast"/> policy like the layer it extends.
/// </summary>
public sealed class LoraAdapter : IDisposable
{
    private readonly long[] _stride;
    private readonly long[] _padding;

    /// <summary>Wraps <paramref name="down"/> and <paramref name="up"/> (taken over: disposed with the adapter).</summary>
    /// <param name="down">lora_A / lora_down weight.</param>
    /// <param name="up">lora_B / lora_up weight.</param>
    /// <param name="alpha">lora_alpha: the output is scaled by alpha / rank.</param>
    /// <param name="dropout">Dropout probability on the input while training.</param>
    /// <param name="stride">The convolution's stride (convolutions only).</param>
    /// <param name="padding">The convolution's padding (convolutions only).</param>
    public LoraAdapter(Parameter down, Parameter up, double alpha, double dropout = 0, long[]? stride = null, long[]? padding = null)
    {
        if (down.shape[0] != up.shape[1])
            throw new ArgumentException($"LoRA down has rank {down.shape[0]} but up has {up.shape[1]}", nameof(up));
        Down = (Parameter)down.DetachFromDisposeScope();
        Up = (Parameter)up.DetachFromDisposeScope();
        Alpha = alpha;
        Dropout = dropout;
        _stride = stride ?? [1, 1];
        _padding = padding ?? [0, 0];
    }

    /// <summary>lora_A / lora_down.</summary>
    public Parameter Down { get; }

    /// <summary>lora_B / lora_up.</summary>
    public Parameter Up { get; }

    /// <summary>r.</summary>
    public int Rank => (int)Down.shape[0];

    /// <summary>lora_alpha.</summary>
    public double Alpha { get; }

    /// <summary>Dropout on the input while training.</summary>
    public double Dropout { get; }

    /// <summary>A multiplier on the update (kohya's <c>multiplier</c>, diffusers' <c>lora_scale</c>); 1 as trained.</summary>
    public double Strength { get; set; } = 1.0;

    /// <summary>alpha / r.</summary>
    public double Scale => Alpha / Rank;

    /// <summary>Whether this extends a convolution.</summary>
    public bool IsConvolution => Down.dim() == 4;

    /// <summary>Trainable elements (down and up).</summary>
    public long ParameterCount => Down.NumberOfElements + Up.NumberOfElements;

    /// <summary>The update to add to the layer's output for <paramref name="input"/>.</summary>
    public Tensor Forward(Tensor input, bool training)
    {
        using var dropped = training && Dropout > 0 ? nn.functional.dropout(input, Dropout, training: true) : null;
        var x = dropped ?? input;
        using var low = IsConvolution ? AutocastOps.Conv2d(x, Down, null, _stride, _padding) : AutocastOps.Linear(x, Down, null);
        using var high = IsConvolution ? AutocastOps.Conv2d(low, Up, null, [1, 1], [0, 0]) : AutocastOps.Linear(low, Up, null);
        return high * (Scale * Strength);
    }

    /// <summary>The update as a weight of the layer's shape, in float32: what merging adds to the layer's weight.</summary>
    public Tensor WeightDelta()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var down = Down.to(ScalarType.Float32);
        var up = Up.to(ScalarType.Float32);
        Tensor delta;
        if (!IsConvolution) delta = up.matmul(down);
        else if (down.shape[2] == 1 && down.shape[3] == 1)
            delta = up.squeeze(3).squeeze(2).matmul(down.squeeze(3).squeeze(2)).unsqueeze(2).unsqueeze(3);
        else
            // A k×k down followed by a 1×1 up is one k×k convolution: contract the rank axis (as kohya's merge does).
            delta = nn.functional.conv2d(down.permute(1, 0, 2, 3), up).permute(1, 0, 2, 3);
        return (delta * (Scale * Strength)).contiguous().MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Down.Dispose();
        Up.Dispose();
    }
}
